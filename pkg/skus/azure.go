package skus

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// FetchAzure lists the virtual-machine resource SKUs of each location, one filtered call per
// location (an unfiltered list is tens of megabytes). The SDK's pipeline retries 429 and 5xx.
func FetchAzure(ctx context.Context, client *armcompute.ResourceSKUsClient, locations []string) ([]*armcompute.ResourceSKU, error) {
	var out []*armcompute.ResourceSKU
	for _, loc := range locations {
		loc = NormalizeRegion(loc)
		if loc == "" {
			continue
		}
		pager := client.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: to.Ptr(fmt.Sprintf("location eq '%s'", loc))})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing VM sizes in %s: %w", loc, err)
			}
			for _, r := range page.Value {
				if r != nil && r.ResourceType != nil && strings.EqualFold(*r.ResourceType, "virtualMachines") {
					out = append(out, r)
				}
			}
		}
	}
	return out, nil
}

package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// FetchAzure lists the virtual-machine resource SKUs of each location, one filtered list per
// location: unfiltered, the API returns every resource type in every region, tens of megabytes.
// Locations are normalised ("East US" → eastus) and de-duplicated, blanks ignored. Throttling (429)
// and 5xx are retried by the client's pipeline (policy.RetryOptions), not here, so callers control
// the budget through the client options and ctx. The first failing location aborts the call and
// is named in the error: a partial result would make the missing region's sizes look unknown.
// Records are returned as the SDK decoded them, in the order Azure sent them, so that they can be
// written out unchanged (MarshalAzCLI) or turned into catalog records (FromSDK).
func FetchAzure(ctx context.Context, client *armcompute.ResourceSKUsClient, locations []string) ([]*armcompute.ResourceSKU, error) {
	var out []*armcompute.ResourceSKU
	seen := map[string]bool{}
	for _, loc := range locations {
		loc = skus.NormalizeRegion(loc)
		if loc == "" || seen[loc] {
			continue
		}
		seen[loc] = true
		// Locations come from cluster objects, i.e. from users: refuse anything that is not an Azure
		// location name rather than splice it into the OData filter.
		if !validLocation(loc) {
			return nil, fmt.Errorf("listing VM sizes in %q: not an Azure location name", loc)
		}
		// The API's only supported filter is location; the value is the normalised name.
		pager := client.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: to.Ptr(fmt.Sprintf("location eq '%s'", loc))})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing VM sizes in %s: %w", loc, err)
			}
			for _, r := range page.Value {
				if r != nil && r.ResourceType != nil && strings.EqualFold(*r.ResourceType, skucatalog.ResourceTypeVM) {
					out = append(out, r)
				}
			}
		}
	}
	return out, nil
}

// validLocation reports whether loc (normalised) looks like an Azure location name: lower-case
// letters and digits only (eastus, westus2, eastus2euap).
func validLocation(loc string) bool {
	for _, c := range loc {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return loc != ""
}

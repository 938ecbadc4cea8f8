// Command skucatalog writes VM-size catalogs in the JSON shape of `az vm list-skus --all -o json`:
//
//	from-facts: convert the project's shared fact file into the embedded catalog and its provenance
//	            (go run ./hack/skucatalog from-facts -in ../shared/data/azure-vm-skus-extended.json
//	             -out internal/skucatalog/data/vm-skus.json -provenance-out internal/skucatalog/data/vm-skus.provenance.json);
//	from-azure: list the VM sizes of a live subscription (needs Azure credentials: az login, a
//	            service principal or workload identity, whatever DefaultAzureCredential finds)
//	            (go run ./hack/skucatalog from-azure -subscription ID -locations eastus,westeurope -out FILE [-provenance-out FILE]).
//
// The conversion and the Azure calls live in internal/skucatalog and internal/azure, where they are
// tested; this is flags and I/O.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/azure"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

const usage = `usage:
  skucatalog from-facts [-in FILE] [-out FILE] [-provenance-out FILE]
  skucatalog from-azure -subscription ID -locations eastus,westeurope -out FILE [-provenance-out FILE] [-timeout 5m]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "from-facts":
		err = fromFacts(os.Args[2:])
	case "from-azure":
		err = fromAzure(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return
	default:
		err = fmt.Errorf("unknown mode %q\n%s", os.Args[1], usage)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "skucatalog:", err)
		os.Exit(1)
	}
}

func fromFacts(args []string) error {
	fs := flag.NewFlagSet("from-facts", flag.ContinueOnError)
	in := fs.String("in", "../shared/data/azure-vm-skus-extended.json", "the shared SKU fact file")
	out := fs.String("out", "internal/skucatalog/data/vm-skus.json", "output file")
	provOut := fs.String("provenance-out", "internal/skucatalog/data/vm-skus.provenance.json", "output file for the records' provenance")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	catalog, provenance, err := skucatalog.ConvertFactFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	if err := writeFileAtomic(*out, catalog); err != nil {
		return err
	}
	return writeFileAtomic(*provOut, provenance)
}

func fromAzure(args []string) error {
	fs := flag.NewFlagSet("from-azure", flag.ContinueOnError)
	sub := fs.String("subscription", os.Getenv("AZURE_SUBSCRIPTION_ID"), "subscription ID (default $AZURE_SUBSCRIPTION_ID)")
	locations := fs.String("locations", "", "comma-separated Azure locations, e.g. eastus,westeurope")
	out := fs.String("out", "", "output file")
	provOut := fs.String("provenance-out", "", "also write the provenance record (needed when -out replaces the embedded catalog)")
	timeout := fs.Duration("timeout", 5*time.Minute, "overall time limit, retries included")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sub == "" || *locations == "" || *out == "" {
		return errors.New("-subscription, -locations and -out are required")
	}
	locs := strings.Split(*locations, ",")
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return err
	}
	client, err := armcompute.NewResourceSKUsClient(*sub, cred, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	records, err := azure.FetchAzure(ctx, client, locs)
	if err != nil {
		return err
	}
	// Azure answers a misspelt location with an empty list, not an error; a catalog silently
	// missing a region would later make every size there look nonexistent.
	perLocation := map[string]int{}
	for _, r := range records {
		for _, l := range r.Locations {
			if l != nil {
				perLocation[skus.NormalizeRegion(*l)]++
			}
		}
	}
	for _, l := range locs {
		if l = skus.NormalizeRegion(l); l != "" && perLocation[l] == 0 {
			return fmt.Errorf("no VM sizes listed for location %q: misspelt, or not enabled for subscription %s?", l, *sub)
		}
	}
	data, err := skucatalog.MarshalAzCLI(records)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, data); err != nil {
		return err
	}
	if *provOut != "" {
		if err := writeProvenance(*provOut, *sub, records); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "skucatalog: wrote %d VM sizes for %v to %s\n", len(records), perLocation, *out)
	return nil
}

// writeProvenance records a live listing as one capture: complete for every location asked for
// (Azure lists every size of a location), dated now, made in the given subscription.
func writeProvenance(path, subscription string, records []*armcompute.ResourceSKU) error {
	c := skucatalog.Capture{
		Origin:          "Azure subscription " + subscription + " (make sku-catalog)",
		CapturedAt:      time.Now().UTC().Truncate(time.Second),
		CompleteListing: true,
		// The binary may serve clusters of other subscriptions than the one listed.
		OtherSubscription: true,
		Sizes:             map[string][]string{},
	}
	list, err := skucatalog.FromSDK(records)
	if err != nil {
		return err
	}
	for _, s := range list {
		c.Sizes[s.Region] = append(c.Sizes[s.Region], s.Name)
	}
	for r := range c.Sizes {
		slices.Sort(c.Sizes[r])
		c.Sizes[r] = slices.Compact(c.Sizes[r])
	}
	data, err := skucatalog.MarshalProvenance(skucatalog.Provenance{FactSource: c.Origin, Captures: []skucatalog.Capture{c}})
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

// writeFileAtomic replaces path only once the new content is complete on disk, so an interrupted
// run never leaves a truncated catalog for the webhook (or go:embed) to read.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

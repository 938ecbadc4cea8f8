// Command skucatalog writes VM-size catalogs in the JSON shape of `az vm list-skus --all -o json`:
//
//	from-subset: convert the project's shared fact file into the embedded catalog;
//	from-azure:  list the resource SKUs of a live subscription (needs Azure credentials).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/skus"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: skucatalog from-subset -in FILE -out FILE | from-azure -subscription ID -locations a,b -out FILE")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "from-subset":
		err = fromSubset(os.Args[2:])
	case "from-azure":
		err = fromAzure(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "skucatalog:", err)
		os.Exit(1)
	}
}

func fromSubset(args []string) error {
	fs := flag.NewFlagSet("from-subset", flag.ExitOnError)
	in := fs.String("in", "../shared/data/azure-vm-skus-subset.json", "the shared SKU fact file")
	out := fs.String("out", "pkg/skus/data/vm-skus.json", "output file")
	_ = fs.Parse(args)
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	converted, err := skus.ConvertSubset(data)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, converted, 0o644)
}

func fromAzure(args []string) error {
	fs := flag.NewFlagSet("from-azure", flag.ExitOnError)
	sub := fs.String("subscription", os.Getenv("AZURE_SUBSCRIPTION_ID"), "subscription ID")
	locations := fs.String("locations", "", "comma-separated regions")
	out := fs.String("out", "pkg/skus/data/vm-skus.json", "output file")
	_ = fs.Parse(args)
	if *sub == "" || *locations == "" {
		return fmt.Errorf("-subscription and -locations are required")
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return err
	}
	client, err := armcompute.NewResourceSKUsClient(*sub, cred, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	records, err := skus.FetchAzure(ctx, client, strings.Split(*locations, ","))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

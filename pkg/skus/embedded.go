package skus

import (
	_ "embed"
	"fmt"
	"sync"
	"time"
)

// embeddedCatalog is real Azure resource-SKU data in the `az vm list-skus -o json` shape, generated
// by `make sku-catalog-embedded` from the project's fact file (see data/PROVENANCE.md).
//
//go:embed data/vm-skus.json
var embeddedCatalog []byte

// embeddedAsOf is the newest generatedAt of the regions in the embedded data.
var embeddedAsOf = time.Date(2025, 6, 3, 21, 16, 53, 0, time.UTC)

var embedded = sync.OnceValue(func() *Static {
	skus, err := ParseAzCLI(embeddedCatalog)
	if err != nil {
		// TestEmbedded guarantees the file parses; reaching this is a build from a broken tree.
		panic(fmt.Sprintf("embedded VM-size catalog: %v", err))
	}
	return NewStatic(skus, SourceInfo{
		Name:   "embedded",
		Detail: "(real resource-SKU records from karpenter-provider-azure's test data)",
		AsOf:   embeddedAsOf,
	})
})

// Embedded returns the catalog compiled into the binary: the fallback when neither live Azure data
// nor a catalog file covers a region.
func Embedded() *Static { return embedded() }

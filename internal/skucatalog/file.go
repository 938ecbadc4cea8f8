package skucatalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// ResourceTypeVM is the resourceType of virtual-machine sizes; `az vm list-skus --all` also lists
// disks, availability sets, hosts and so on, which the policy has no use for.
const ResourceTypeVM = "virtualMachines"

// ParseAzCLI reads the JSON that `az vm list-skus --all -o json` prints (an array of ARM
// resource-SKU records), or the REST envelope {"value": [...]} that `az rest` and the API return.
// Each record is decoded into the SDK's own model, so the accepted format is exactly Azure's (keys
// are case-sensitive camelCase, as az prints them). Records that are not virtualMachines are
// skipped; a record listing several locations yields one SKU per location. Errors name the record
// index and where it starts in the file, so a hand-edited catalog can be fixed.
func ParseAzCLI(data []byte) ([]skus.SKU, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	raws, err := splitRecords(data)
	if err != nil {
		return nil, err
	}
	records := make([]*armcompute.ResourceSKU, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw.data, &records[i]); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i, positionAt(data, raw.offset), err)
		}
		if r := records[i]; r != nil && r.Name == nil && hasKey(raw.data, "Name") {
			// PowerShell's Get-AzComputeResourceSku | ConvertTo-Json spells keys in PascalCase, which
			// the SDK model does not read; say so rather than report a baffling "missing name".
			return nil, fmt.Errorf("record %d (%s): missing name (found \"Name\": keys must be camelCase as `az vm list-skus -o json` prints them)", i, positionAt(data, raw.offset))
		}
	}
	out, err := FromSDK(records)
	if err != nil {
		// FromSDK reports the index; add the position, which only the file knows.
		var re *recordError
		if errors.As(err, &re) && re.index < len(raws) {
			return nil, fmt.Errorf("record %d (%s): %s", re.index, positionAt(data, raws[re.index].offset), re.msg)
		}
		return nil, err
	}
	return out, nil
}

// utf8BOM is what Windows tools (PowerShell's Out-File, Notepad) like to put before the JSON.
var utf8BOM = []byte("\xef\xbb\xbf")

// rawRecord is one undecoded element of the records array and its byte offset in the input. The
// offset becomes a line and column only for an error message: counting lines for every record
// would make parsing a full `--all` listing (~100 MB) quadratic.
type rawRecord struct {
	data   json.RawMessage
	offset int64
}

// position is a line and column (both 1-based) in the input, for error messages.
type position struct{ line, col int }

func (p position) String() string { return fmt.Sprintf("line %d, column %d", p.line, p.col) }

func positionAt(data []byte, offset int64) position {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	return position{line: line, col: int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1}
}

// splitRecords walks the top level of the document with a token decoder (rather than unmarshalling
// it in one go) so that every record, and every syntax error, can be given a line and column.
func splitRecords(data []byte) ([]rawRecord, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) error {
		// The streaming decoder's syntax-error offsets are not reliable positions in the input, so
		// on this (error-only) path re-check the whole document in one go, whose offsets are exact.
		var whole json.RawMessage
		var se *json.SyntaxError
		if verr := json.Unmarshal(data, &whole); errors.As(verr, &se) {
			if se.Offset >= int64(len(data)) {
				return fmt.Errorf("invalid JSON: unexpected end of input at %s", positionAt(data, int64(len(data))))
			}
			// Offset counts the offending byte; point at it rather than just past it.
			return fmt.Errorf("invalid JSON at %s: %w", positionAt(data, max(se.Offset-1, 0)), se)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("invalid JSON: unexpected end of input at %s", positionAt(data, int64(len(data))))
		}
		return fmt.Errorf("invalid JSON at %s: %w", positionAt(data, dec.InputOffset()), err)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty input: expected the JSON array `az vm list-skus --all -o json` prints")
		}
		return nil, fail(err)
	}
	var records []rawRecord
	switch tok {
	case json.Delim('['):
		if records, err = readArray(dec, data); err != nil {
			return nil, fail(err)
		}
	case json.Delim('{'):
		// The ARM list envelope: {"value": [...], "nextLink": "..."}.
		var sawValue bool
		var nextLink string
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, fail(err)
			}
			switch key {
			case "value":
				sawValue = true
				if tok, err := dec.Token(); err != nil {
					return nil, fail(err)
				} else if tok != json.Delim('[') {
					return nil, fmt.Errorf("at %s: \"value\" must be an array of resource SKUs", positionAt(data, dec.InputOffset()))
				}
				if records, err = readArray(dec, data); err != nil {
					return nil, fail(err)
				}
			case "nextLink":
				if err := dec.Decode(&nextLink); err != nil {
					return nil, fail(err)
				}
			default:
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, fail(err)
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, fail(err)
		}
		if !sawValue {
			return nil, errors.New(`expected a JSON array of resource SKUs or {"value": [...]}, got an object without "value"`)
		}
		if nextLink != "" {
			// A partial catalog would make the missing sizes look nonexistent to the policy.
			return nil, errors.New(`the file holds one page of a paged list ("nextLink" is set); save every page, e.g. with ` + "`az vm list-skus --all -o json`")
		}
	default:
		return nil, fmt.Errorf("expected a JSON array of resource SKUs (`az vm list-skus --all -o json`), got %s", describe(tok))
	}
	end := skipSpace(data, dec.InputOffset())
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after the resource-SKU list at %s", positionAt(data, end))
	}
	return records, nil
}

// readArray reads the elements of an array whose '[' has been consumed, and the closing ']'.
func readArray(dec *json.Decoder, data []byte) ([]rawRecord, error) {
	var out []rawRecord
	for dec.More() {
		// InputOffset is just past the previous token; the element starts after the separator.
		start := skipSpace(data, dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		out = append(out, rawRecord{data: raw, offset: start})
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, err
	}
	return out, nil
}

// skipSpace returns the offset of the first byte at or after off that is neither JSON whitespace
// nor an element separator.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
		off++
	}
	return off
}

// describe names the kind of a top-level JSON token for an error message.
func describe(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprint(tok)
}

// hasKey reports whether the JSON object raw has key (exactly).
func hasKey(raw json.RawMessage, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

// recordError is an error about one record of a list, so ParseAzCLI can add the file position.
type recordError struct {
	index int
	msg   string
}

func (e *recordError) Error() string { return fmt.Sprintf("record %d: %s", e.index, e.msg) }

// FromSDK converts SDK resource-SKU records (from a file or a live call) into catalog records, one
// per location. Records whose resourceType is set and is not virtualMachines are skipped; a record
// without a resourceType is taken as a VM size, which is what a hand-written catalog would mean.
func FromSDK(records []*armcompute.ResourceSKU) ([]skus.SKU, error) {
	var out []skus.SKU
	for i, r := range records {
		if r == nil {
			return nil, &recordError{i, "null record"}
		}
		if r.ResourceType != nil && !strings.EqualFold(*r.ResourceType, ResourceTypeVM) {
			continue
		}
		if r.Name == nil || strings.TrimSpace(*r.Name) == "" {
			return nil, &recordError{i, "missing name"}
		}
		name := strings.TrimSpace(*r.Name)
		locations := deref(r.Locations)
		for _, li := range r.LocationInfo {
			if li != nil && li.Location != nil && !containsFold(locations, *li.Location) {
				locations = append(locations, *li.Location)
			}
		}
		if len(locations) == 0 {
			return nil, &recordError{i, fmt.Sprintf("%s: no locations", name)}
		}
		caps := map[string]string{}
		for _, c := range r.Capabilities {
			if c != nil && c.Name != nil && c.Value != nil {
				caps[*c.Name] = *c.Value
			}
		}
		for _, loc := range locations {
			if skus.NormalizeRegion(loc) == "" {
				return nil, &recordError{i, fmt.Sprintf("%s: empty location", name)}
			}
			// Each region gets its own map so that no two catalog records share mutable state.
			s := skus.SKU{Name: name, Region: skus.NormalizeRegion(loc), Capabilities: maps.Clone(caps)}
			if r.Family != nil {
				s.Family = *r.Family
			}
			for _, rs := range r.Restrictions {
				if rs == nil || !restrictionApplies(rs, loc) {
					continue
				}
				x := skus.Restriction{}
				if rs.Type != nil {
					x.Type = string(*rs.Type)
				}
				if rs.ReasonCode != nil {
					x.ReasonCode = string(*rs.ReasonCode)
				}
				if rs.RestrictionInfo != nil && len(rs.RestrictionInfo.Zones) > 0 {
					x.Zones = deref(rs.RestrictionInfo.Zones)
				}
				s.Restrictions = append(s.Restrictions, x)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// restrictionApplies: a restriction names the locations it is about in values (and in
// restrictionInfo.locations); one that names none applies to all of the record's locations.
func restrictionApplies(r *armcompute.ResourceSKURestrictions, loc string) bool {
	names := deref(r.Values)
	if r.RestrictionInfo != nil {
		names = append(names, deref(r.RestrictionInfo.Locations)...)
	}
	if len(names) == 0 {
		return true
	}
	return containsFold(names, loc)
}

// LoadFile reads a catalog file. Its modification time stands in for when the data was fetched:
// `az vm list-skus > file` leaves no other date in it.
func LoadFile(path string) (*skus.Static, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the open file, not the path, so the date belongs to the bytes that were read even if the
	// file is replaced meanwhile.
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return ParseFile(path, data, st.ModTime())
}

// ParseFile is LoadFile for bytes already read: path names the file in errors and in the source,
// modTime stands in for when the data was fetched.
func ParseFile(path string, data []byte, modTime time.Time) (*skus.Static, error) {
	list, err := ParseAzCLI(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: no virtualMachines records", path)
	}
	return skus.NewStatic(list, skus.SourceInfo{Name: "file", Detail: path, AsOf: modTime}), nil
}

func deref(ps []*string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// containsFold reports whether list holds s as a region ("East US" matches "eastus").
func containsFold(list []string, s string) bool {
	for _, v := range list {
		if skus.NormalizeRegion(v) == skus.NormalizeRegion(s) {
			return true
		}
	}
	return false
}

// Build stacks the VM-size catalogs a command uses, first match per region wins: live Azure data
// (nil without a subscription), the catalog file (path "" for none), then the embedded catalog. Both
// `serve` and `check` build theirs here, so that they layer alike.
func Build(live skus.Catalog, path string) (*skus.Layered, error) {
	if path == "" {
		return Layer(live, nil), nil
	}
	file, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	return Layer(live, file), nil
}

// Layer stacks live data, a catalog file's and the embedded catalog, in that order (nil layers are
// left out): the one layering, for Build and for `serve`, whose file layer reloads itself.
func Layer(live, file skus.Catalog) *skus.Layered {
	return skus.NewLayered(live, file, Embedded())
}

package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// ParseError is a problem in a policy file, with the line it is on (0 when unknown).
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	file := e.File
	if file == "" {
		file = "policy"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", file, e.Msg)
}

type fileDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	WarnOnly   bool   `yaml:"warnOnly"`
	// DryRun is the old name of warnOnly, accepted with a deprecation warning: it was easily taken
	// for a request's server-side dryRun.
	DryRun                     *bool         `yaml:"dryRun"`
	DefaultLocation            string        `yaml:"defaultLocation"`
	RequireCustomerManagedKeys bool          `yaml:"requireCustomerManagedKeys"`
	AllowedDESSubscriptions    []string      `yaml:"allowedDESSubscriptions"`
	KeyExpiryWarning           *positioned   `yaml:"keyExpiryWarning"`
	Rules                      yaml.Node     `yaml:"rules"`
	Defaults                   []fileDefault `yaml:"defaults"`
}

type fileDefault struct {
	Name                    string        `yaml:"name"`
	Regions                 []string      `yaml:"regions"`
	NamespaceSelector       *fileSelector `yaml:"namespaceSelector"`
	DiskEncryptionSetID     *positioned   `yaml:"diskEncryptionSetID"`
	DataDiskEncryptionSetID *positioned   `yaml:"dataDiskEncryptionSetID"`
	// DataDiskStorageAccountType is the storage type of a managedDisk injected into data disks
	// that have none (see Default).
	DataDiskStorageAccountType *positioned `yaml:"dataDiskStorageAccountType"`
	EncryptionAtHost           bool        `yaml:"encryptionAtHost"`
}

type fileSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

// positioned is a scalar that remembers its line, so that a bad DES ID is reported where it is.
type positioned struct {
	Value string
	Line  int
}

func (p *positioned) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a string", n.Line)
	}
	p.Value, p.Line = n.Value, n.Line
	return nil
}

// Parse reads a policy file: either an EncryptionPolicy document or a bare Palette pack-values file
// (cloud.azure.diskEncryptionSetID / cloud.azure.encryptionAtHost). name is used in error messages.
func Parse(name string, data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &ParseError{File: name, Msg: "the file is empty; expected an " + Kind + " document or Palette pack values"}
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, &ParseError{File: name, Line: top.Line, Msg: "expected a mapping at the top level"}
	}
	if mappingValue(top, "apiVersion") == nil && mappingValue(top, "kind") == nil && mappingValue(top, "cloud") != nil {
		return parsePackValues(name, top)
	}
	return parseEncryptionPolicy(name, data)
}

func parseEncryptionPolicy(name string, data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// Unknown keys are errors: a misspelt key in a security policy must not silently do nothing.
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ParseError{File: name, Line: extra.Line, Msg: "the policy file must hold exactly one YAML document"}
	}
	if doc.APIVersion != APIVersion {
		return nil, &ParseError{File: name, Line: 1, Msg: fmt.Sprintf("apiVersion is %q; expected %q", doc.APIVersion, APIVersion)}
	}
	if doc.Kind != Kind {
		return nil, &ParseError{File: name, Line: 1, Msg: fmt.Sprintf("kind is %q; expected %q", doc.Kind, Kind)}
	}
	p := &Policy{
		WarnOnly:                   doc.WarnOnly,
		DefaultLocation:            skus.NormalizeRegion(doc.DefaultLocation),
		RequireCustomerManagedKeys: doc.RequireCustomerManagedKeys,
		Actions:                    map[RuleID]Action{},
		Source:                     name,
	}
	if doc.DryRun != nil {
		if doc.WarnOnly && !*doc.DryRun {
			return nil, &ParseError{File: name, Msg: "warnOnly: true and the deprecated dryRun: false contradict each other; remove dryRun"}
		}
		p.WarnOnly = p.WarnOnly || *doc.DryRun
		p.Warnings = append(p.Warnings, "dryRun is deprecated: use warnOnly (the same switch, under a name that cannot be taken for a request's server-side dry run)")
	}
	for _, s := range doc.AllowedDESSubscriptions {
		if !desid.IsGUID(s) {
			return nil, &ParseError{File: name, Msg: fmt.Sprintf("allowedDESSubscriptions: %q is not a subscription GUID", s)}
		}
		p.AllowedDESSubscriptions = append(p.AllowedDESSubscriptions, strings.ToLower(s))
	}
	if doc.KeyExpiryWarning != nil {
		d, err := parseKeyExpiryWarning(doc.KeyExpiryWarning.Value)
		if err != nil {
			return nil, &ParseError{File: name, Line: doc.KeyExpiryWarning.Line, Msg: "keyExpiryWarning: " + err.Error()}
		}
		p.KeyExpiryWarning = d
	}
	if err := parseRules(name, &doc.Rules, p.Actions); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, fd := range doc.Defaults {
		d, err := fd.toDefault(name, i)
		if err != nil {
			return nil, err
		}
		if seen[d.Name] {
			return nil, &ParseError{File: name, Msg: fmt.Sprintf("defaults[%d]: name %q is used twice", i, d.Name)}
		}
		seen[d.Name] = true
		p.Defaults = append(p.Defaults, d)
	}
	return p, nil
}

// parseKeyExpiryWarning reads whole days ("30d") or a Go duration ("720h"), between an hour and a
// year: a key's expiry is planned in days, and anything outside that range is a typo.
func parseKeyExpiryWarning(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || days == "" || days[0] == '+' || days[0] == '-' {
			return 0, fmt.Errorf("%q is not a number of days such as 30d, nor a duration such as 720h", v)
		}
		if n > 365 {
			return 0, fmt.Errorf("%q is outside 1h..365d", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is not a number of days such as 30d, nor a duration such as 720h", v)
		}
	}
	if d < time.Hour || d > 365*24*time.Hour {
		return 0, fmt.Errorf("%q is outside 1h..365d", v)
	}
	return d, nil
}

func parseRules(name string, n *yaml.Node, into map[RuleID]Action) error {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &ParseError{File: name, Line: n.Line, Msg: "rules: expected a mapping of rule ID to action"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		rule := RuleID(k.Value)
		if _, ok := builtinActions[rule]; !ok {
			return &ParseError{File: name, Line: k.Line, Msg: fmt.Sprintf("rules: unknown rule %q (known: %s)", k.Value, joinRules())}
		}
		switch a := Action(v.Value); a {
		case ActionDeny, ActionWarn, ActionAudit:
			into[rule] = a
		default:
			return &ParseError{File: name, Line: v.Line, Msg: fmt.Sprintf("rules.%s: action %q is not one of deny, warn, audit", k.Value, v.Value)}
		}
	}
	return nil
}

func (fd fileDefault) toDefault(file string, i int) (Default, error) {
	where := fmt.Sprintf("defaults[%d]", i)
	d := Default{Name: fd.Name, EncryptionAtHost: fd.EncryptionAtHost}
	if d.Name == "" {
		d.Name = where
	}
	for _, r := range fd.Regions {
		d.Regions = append(d.Regions, skus.NormalizeRegion(r))
	}
	if fd.NamespaceSelector != nil {
		ls := &metav1.LabelSelector{MatchLabels: fd.NamespaceSelector.MatchLabels}
		for _, e := range fd.NamespaceSelector.MatchExpressions {
			ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
			})
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return Default{}, &ParseError{File: file, Msg: fmt.Sprintf("%s.namespaceSelector: %v", where, err)}
		}
		d.Selector = sel
	}
	for _, f := range []struct {
		key string
		in  *positioned
		out *string
	}{
		{"diskEncryptionSetID", fd.DiskEncryptionSetID, &d.DiskEncryptionSetID},
		{"dataDiskEncryptionSetID", fd.DataDiskEncryptionSetID, &d.DataDiskEncryptionSetID},
	} {
		if f.in == nil {
			continue
		}
		id, err := desid.Parse(f.in.Value)
		if err != nil {
			return Default{}, &ParseError{File: file, Line: f.in.Line, Msg: fmt.Sprintf("%s.%s: %v", where, f.key, err)}
		}
		*f.out = id.String()
	}
	if t := fd.DataDiskStorageAccountType; t != nil {
		v, err := dataDiskStorageType(t.Value)
		if err != nil {
			return Default{}, &ParseError{File: file, Line: t.Line, Msg: fmt.Sprintf("%s.dataDiskStorageAccountType: %v", where, err)}
		}
		if d.DiskEncryptionSetID == "" && d.DataDiskEncryptionSetID == "" {
			return Default{}, &ParseError{File: file, Line: t.Line, Msg: fmt.Sprintf("%s.dataDiskStorageAccountType is set but the default has no Disk Encryption Set: a managedDisk is only injected to carry one; set diskEncryptionSetID or dataDiskEncryptionSetID", where)}
		}
		d.DataDiskStorageAccountType = v
	}
	if d.DiskEncryptionSetID == "" && d.DataDiskEncryptionSetID == "" && !d.EncryptionAtHost {
		return Default{}, &ParseError{File: file, Msg: fmt.Sprintf("%s (%s) sets nothing: give diskEncryptionSetID, dataDiskEncryptionSetID or encryptionAtHost: true", where, d.Name)}
	}
	return d, nil
}

// parsePackValues reads the Palette PXK pack values shape. Pack values files hold much else, so only
// cloud.azure is read (strictly); the result applies to every region and namespace with every rule
// at its built-in action.
func parsePackValues(name string, top *yaml.Node) (*Policy, error) {
	cloud := mappingValue(top, "cloud")
	azure := mappingValue(cloud, "azure")
	if azure == nil || azure.Kind != yaml.MappingNode {
		return nil, &ParseError{File: name, Line: cloud.Line, Msg: "cloud.azure is missing: Palette pack values need cloud.azure.diskEncryptionSetID and/or cloud.azure.encryptionAtHost"}
	}
	d := Default{Name: "palette-pack-values"}
	for i := 0; i+1 < len(azure.Content); i += 2 {
		k, v := azure.Content[i], azure.Content[i+1]
		switch k.Value {
		case "diskEncryptionSetID":
			if strings.TrimSpace(v.Value) == "" {
				return nil, &ParseError{File: name, Line: v.Line, Msg: "cloud.azure.diskEncryptionSetID is empty (the Palette preset leaves \"\"): paste the Resource ID of your Disk Encryption Set from its JSON View in the Azure portal, or remove the key"}
			}
			id, err := desid.Parse(v.Value)
			if err != nil {
				return nil, &ParseError{File: name, Line: v.Line, Msg: "cloud.azure.diskEncryptionSetID: " + err.Error()}
			}
			d.DiskEncryptionSetID = id.String()
		case "encryptionAtHost":
			var b bool
			if err := v.Decode(&b); err != nil {
				return nil, &ParseError{File: name, Line: v.Line, Msg: fmt.Sprintf("cloud.azure.encryptionAtHost: %q is not true or false", v.Value)}
			}
			d.EncryptionAtHost = b
		default:
			return nil, &ParseError{File: name, Line: k.Line, Msg: fmt.Sprintf("cloud.azure.%s: unknown key; only diskEncryptionSetID and encryptionAtHost are read", k.Value)}
		}
	}
	p := &Policy{Actions: map[RuleID]Action{}, Source: name}
	if d.DiskEncryptionSetID != "" || d.EncryptionAtHost {
		p.Defaults = []Default{d}
	}
	return p, nil
}

// DataDiskStorageTypes are the storage account types a default may give an injected data disk:
// Azure's managed-disk types (armcompute.StorageAccountTypes, held against the SDK by a test) except
// UltraSSD_LRS and PremiumV2_LRS, which need more than a storage type (cachingType None, and the VM's
// additionalCapabilities.ultraSSDEnabled or a zone) that a default cannot choose for the user.
var DataDiskStorageTypes = []string{"Premium_LRS", "Premium_ZRS", "StandardSSD_LRS", "StandardSSD_ZRS", "Standard_LRS"}

var needMoreThanAType = map[string]string{
	"UltraSSD_LRS":  "an Ultra disk also needs cachingType None and additionalCapabilities.ultraSSDEnabled on the VM",
	"PremiumV2_LRS": "a Premium SSD v2 disk also needs cachingType None and a zonal VM",
}

func dataDiskStorageType(v string) (string, error) {
	for _, t := range DataDiskStorageTypes {
		if v == t {
			return t, nil
		}
		if strings.EqualFold(v, t) {
			return "", fmt.Errorf("%q: Azure spells it %q", v, t)
		}
	}
	for t, why := range needMoreThanAType {
		if strings.EqualFold(v, t) {
			return "", fmt.Errorf("%s cannot be a default: %s; set the data disk's managedDisk yourself", t, why)
		}
	}
	return "", fmt.Errorf("%q is not an Azure managed-disk storage type (one of %s)", v, strings.Join(DataDiskStorageTypes, ", "))
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// yamlError turns yaml.v3's messages ("yaml: unmarshal errors:\n  line 4: field foo not found in
// type policy.fileDoc") into "FILE:4: unknown key "foo"", which is what a person needs.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		line := 0
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
			_, rest, _ := strings.Cut(msg, ":")
			msg = strings.TrimSpace(rest)
		}
		if strings.HasPrefix(msg, "field ") && strings.Contains(msg, " not found in type ") {
			before, _, _ := strings.Cut(msg, " not found")
			field := strings.TrimPrefix(before, "field ")
			msg = fmt.Sprintf("unknown key %q", field)
		}
		return &ParseError{File: name, Line: line, Msg: msg}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, rest, _ := strings.Cut(msg, ":")
		msg = strings.TrimSpace(rest)
	}
	return &ParseError{File: name, Line: line, Msg: msg}
}

func joinRules() string {
	rs := Rules()
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestFlagValueNames: pflag prints text in backquotes in a flag's usage as the name of its value
// ("--sku-catalog FILE"), so a command quoted that way in a usage string turns into a value name
// with spaces in --help. Every flag of every command must have a one-word value name.
func TestFlagValueNames(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			name, usage := pflag.UnquoteUsage(f)
			if strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: value name %q (from the usage %q); backquotes in a usage name the value", c.CommandPath(), f.Name, name, usage)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())

	out, _ := runCLI(t, "", "check", "--help")
	if !strings.Contains(out, "--sku-catalog FILE") || !strings.Contains(out, "'az vm list-skus --all -o json'") {
		t.Errorf("check --help does not show --sku-catalog FILE with the az command in its text:\n%s", out)
	}
}

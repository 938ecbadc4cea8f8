package streamcheck

import (
	"fmt"
	"io"
	"os"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
)

// Source is one input file. Run reads a source more than once (the policy scan, the main pass, and
// the re-reading of held-back objects), so Open must give the same bytes every time.
type Source struct {
	// Name is the file as results and messages name it ("-" for stdin).
	Name string
	Open func() (io.ReadCloser, error)
}

// Inputs are the sources `check` reads: files, directories (expanded as manifest.ReadFiles does)
// and stdin.
type Inputs struct {
	Sources []Source
	spools  []string
}

// Close removes the copies of stdin.
func (in *Inputs) Close() error {
	var first error
	for _, p := range in.spools {
		if err := os.Remove(p); err != nil && first == nil {
			first = err
		}
	}
	in.spools = nil
	return first
}

// OpenInputs turns check's paths into sources. A path that cannot be expanded becomes a source
// whose Open fails, so that its error comes in input order, as manifest.ReadFiles reports it. Stdin
// ("-") is copied to a temporary file the first time it is opened, since Run reads every source more
// than once; memory stays bounded, the copy is on disk.
func OpenInputs(paths []string, stdin io.Reader) *Inputs {
	in := &Inputs{}
	for _, p := range paths {
		if p == "-" {
			in.Sources = append(in.Sources, in.stdinSource(stdin))
			continue
		}
		files, err := manifest.Expand(p)
		if err != nil {
			in.Sources = append(in.Sources, Source{Name: p, Open: func() (io.ReadCloser, error) { return nil, err }})
			continue
		}
		for _, f := range files {
			in.Sources = append(in.Sources, Source{Name: f, Open: func() (io.ReadCloser, error) { return os.Open(f) }})
		}
	}
	return in
}

func (in *Inputs) stdinSource(stdin io.Reader) Source {
	var spool string
	var spoolErr error
	done := false
	return Source{Name: "-", Open: func() (io.ReadCloser, error) {
		if !done {
			done = true
			spool, spoolErr = in.spool(stdin)
		}
		if spoolErr != nil {
			return nil, spoolErr
		}
		return os.Open(spool)
	}}
}

func (in *Inputs) spool(stdin io.Reader) (string, error) {
	f, err := os.CreateTemp("", "capz-encryption-webhook-stdin-*.yaml")
	if err != nil {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	in.spools = append(in.spools, f.Name())
	_, err = io.Copy(f, stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	return f.Name(), nil
}

// Package streamcheck is `check` over a stream: it reads its input one document at a time, decides
// each object as soon as its resolution is settled, and gives the same report, in the same order,
// as deciding on the whole input at once (Whole, which `check -o yaml` still uses, since it writes
// the input back).
//
// The rule. An object's decision depends on the rest of the input only through its resolution:
// the Cluster it is bound to (by label, owner or referrer), that Cluster and its region
// (clusterinfo.Result). The policy is fixed before the first object (scanPolicy), so two
// resolutions that are equal give the same decision. When an object is read, it is resolved
// against everything read so far:
//
//   - settled (bound, its Cluster found, a region from it; or bound to a ClusterClass; or its
//     referrers already disagree): decided at once, its document dropped.
//   - not settled (unbound, or its Cluster or AzureCluster not read yet): held back. Only its place
//     in the input is kept; at the end it is read again and decided on the final resolution.
//
// Any later object can still change a settled resolution: a second referrer of a template (the
// binding turns ambiguous, or names another referrer first), a later duplicate Cluster or
// AzureCluster (the last of a name wins), another AzureCluster labelled for a Cluster without refs.
// Rather than hold back every object such a thing could happen to (every template a referrer
// binds), each early decision keeps its resolution, and at the end every object is resolved again
// against the whole input: where the two differ, the object is read again and decided anew
// (Stats.Redecided). CAPZ's flavors and anything generated like them never need that.
package streamcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/report"
)

// Stats say what streaming cost: tests assert on them, since timings are not theirs to assert.
type Stats struct {
	// Objects counts every object read, Checked those the policy decides on.
	Objects, Checked int
	// Decided counts the objects decided while reading; HeldBack those decided at the end, because
	// their resolution was not settled when they were read.
	Decided, HeldBack int
	// Redecided counts early decisions a later object made stale, decided again at the end.
	Redecided int
	// MaxLiveDocuments is the most parsed documents held at once, read-ahead included.
	MaxLiveDocuments int
	// Stored counts the objects kept for resolution (Clusters, AzureClusters, referrers, trimmed).
	Stored int
}

// record is one checked object until the end of the input.
type record struct {
	src, doc int
	item     []int
	kind     string
	name     string
	subject  clusterinfo.Subject
	// res is the resolution the result was decided on; decided is false for a held-back object.
	res     clusterinfo.Result
	decided bool
	result  report.Result
}

// indexedError is an error of the object at index; the first in input order is reported, as
// deciding object after object reports it.
type indexedError struct {
	index int
	err   error
}

func (e *indexedError) keep(index int, err error) *indexedError {
	if e == nil || index < e.index {
		return &indexedError{index, err}
	}
	return e
}

// Run checks sources: the report `check` prints, and what streaming cost. Errors are the input's
// (exit status 2), the same that reading the whole input reports: an unreadable document first,
// then a bad policy or catalog, then an object the policy cannot evaluate.
func Run(sources []Source, opts offline.Options) (*report.Report, Stats, error) {
	var st Stats
	var policyDocs []manifest.Object
	var setupErr error
	if opts.PolicyFile == "" {
		policyDocs, setupErr = scanPolicy(sources)
	}
	var ev *offline.Evaluator
	if setupErr == nil {
		ev, setupErr = offline.NewIncremental(opts, policyDocs)
	}
	if setupErr != nil {
		if err := firstReadError(sources); err != nil {
			return nil, st, err
		}
		return nil, st, setupErr
	}

	rep := &report.Report{Policy: ev.Policy.Source}
	var records []record
	var evalErr *indexedError
	var live liveCount
	for si, src := range sources {
		err := eachParsed(src, &live, func(raw manifest.RawDocument, doc manifest.Document) (bool, error) {
			for _, obj := range doc.Objects {
				st.Objects++
				// Added before it is resolved, as the whole-input store holds it too.
				if err := ev.Add(obj); err != nil {
					return false, err
				}
				if !policy.Handles(obj.APIVersion, obj.Kind) {
					rep.Skipped++
					continue
				}
				rec := record{src: si, doc: raw.Index(), item: obj.Item, kind: obj.Kind, name: obj.Name}
				index := len(records)
				s, err := ev.Subject(obj)
				if err != nil {
					evalErr = evalErr.keep(index, err)
				} else if rec.subject, rec.res = s, ev.Resolve(s); offline.Settled(rec.res) && evalErr == nil {
					d, cluster, err := ev.Decide(offline.Object{Object: obj}, rec.res)
					if err != nil {
						evalErr = evalErr.keep(index, err)
					} else {
						rec.decided, rec.result = true, report.NewResult(obj, d, cluster)
						st.Decided++
					}
				}
				records = append(records, rec)
			}
			return true, nil
		})
		if err != nil {
			return nil, st, err
		}
	}
	st.Checked, st.Stored = len(records), ev.Stored()

	// The end of the input: resolve everything again against all of it; read again and decide what
	// was held back or has gone stale.
	again := map[int][]int{} // by source, the records to read again
	for i := range records {
		r := &records[i]
		if evalErr != nil && i >= evalErr.index {
			break
		}
		if r.subject.Kind == "" {
			continue // its subject could not be read: evalErr holds it
		}
		final := ev.Resolve(r.subject)
		if r.decided && reflect.DeepEqual(final, r.res) {
			continue
		}
		if r.decided {
			st.Redecided++
		} else {
			st.HeldBack++
		}
		r.decided, r.res = false, final
		again[r.src] = append(again[r.src], i)
	}
	for si, idx := range again {
		if err := redecide(sources[si], ev, records, idx, &evalErr, &live); err != nil {
			return nil, st, err
		}
	}
	st.MaxLiveDocuments = int(live.peak.Load())
	if evalErr != nil {
		return nil, st, evalErr.err
	}
	for i := range records { // appended, as Whole does: no results is a nil slice (JSON null)
		rep.Results = append(rep.Results, records[i].result)
	}
	return rep, st, nil
}

// redecide reads src again and decides the records idx (in input order) on their final resolution.
func redecide(src Source, ev *offline.Evaluator, records []record, idx []int, evalErr **indexedError, live *liveCount) error {
	byDoc := map[int][]int{}
	for _, i := range idx {
		byDoc[records[i].doc] = append(byDoc[records[i].doc], i)
	}
	left := len(byDoc)
	return eachDocument(src, func(raw manifest.RawDocument) (bool, error) {
		want, ok := byDoc[raw.Index()]
		if !ok {
			return true, nil
		}
		doc, err := manifest.ParseDocumentDeferred(src.Name, raw)
		if err != nil {
			return false, err
		}
		live.add(1)
		defer live.add(-1)
		for _, i := range want {
			r := &records[i]
			j := slices.IndexFunc(doc.Objects, func(o manifest.Object) bool { return slices.Equal(o.Item, r.item) })
			if j < 0 || doc.Objects[j].Kind != r.kind || doc.Objects[j].Name != r.name {
				return false, fmt.Errorf("%s: %s %s changed while it was being read", src.Name, r.kind, r.name)
			}
			d, cluster, err := ev.Decide(offline.Object{Object: doc.Objects[j]}, r.res)
			if err != nil {
				*evalErr = (*evalErr).keep(i, err)
				continue
			}
			r.decided, r.result = true, report.NewResult(doc.Objects[j], d, cluster)
		}
		left--
		return left > 0, nil
	})
}

// eachDocument calls fn with every document of src, until fn says stop or fails.
func eachDocument(src Source, fn func(manifest.RawDocument) (bool, error)) error {
	rc, err := src.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := manifest.NewDecoder(src.Name, rc)
	for {
		raw, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		more, err := fn(raw)
		if err != nil || !more {
			return err
		}
	}
}

// policyKind is what a document must contain to be parsed by scanPolicy.
var policyKind = []byte(policy.Kind)

// scanPolicy finds the EncryptionPolicy documents of the input before anything is decided: the
// policy decides every object, and one may come last. Only documents that spell the kind are
// parsed (a kind written with YAML or JSON escapes is not found).
func scanPolicy(sources []Source) ([]manifest.Object, error) {
	var found []manifest.Object
	for _, src := range sources {
		err := eachDocument(src, func(raw manifest.RawDocument) (bool, error) {
			if !bytes.Contains(raw.Raw(), policyKind) {
				return true, nil
			}
			doc, err := manifest.ParseDocument(src.Name, raw)
			if err != nil {
				return false, err
			}
			for _, o := range doc.Objects {
				if o.APIVersion == policy.APIVersion && o.Kind == policy.Kind {
					found = append(found, o)
				}
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return found, nil
}

// firstReadError reads every source to find the first unreadable one or document, in input order.
func firstReadError(sources []Source) error {
	for _, src := range sources {
		err := eachDocument(src, func(raw manifest.RawDocument) (bool, error) {
			_, err := manifest.ParseDocument(src.Name, raw)
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

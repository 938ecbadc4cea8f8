package streamcheck

import (
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/report"
)

// Whole checks objs, the whole input held at once: every object is resolved against all of them.
// `check -o yaml` uses it (it writes the input back, so it holds the input anyway), and the tests
// hold Run to its answers. It also returns each decision, by object, for the patches.
func Whole(objs []manifest.Object, opts offline.Options) (*report.Report, map[*manifest.Object]*policy.Decision, error) {
	ev, err := offline.New(opts, objs)
	if err != nil {
		return nil, nil, err
	}
	rep := &report.Report{Policy: ev.Policy.Source}
	decisions := map[*manifest.Object]*policy.Decision{}
	for i := range objs {
		obj := &objs[i]
		if !policy.Handles(obj.APIVersion, obj.Kind) {
			rep.Skipped++
			continue
		}
		d, cluster, err := ev.Evaluate(offline.Object{Object: *obj})
		if err != nil {
			return nil, nil, err
		}
		decisions[obj] = d
		rep.Results = append(rep.Results, report.NewResult(*obj, d, cluster))
	}
	return rep, decisions, nil
}

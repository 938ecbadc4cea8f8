// Command loadbench measures what the webhook costs on the real API path: AzureMachineTemplates are
// created through a real kube-apiserver (envtest: the kube-apiserver and etcd that
// hack/envtest-assets.sh builds) by concurrent clients, in several modes measured in the same run,
// round after round so that drift of a shared machine spreads over all of them:
//
//   - none:    no admission webhook;
//   - noop:    a no-op webhook pair (plain Go net/http over TLS, its own process) on exactly the
//     registrations the chart installs;
//   - noop-patch: the same pair, whose mutating half answers with the patch our webhook makes for
//     the benchmark's template, computed once: what mutation itself costs the apiserver;
//   - webhook: capz-encryption-webhook `serve`, same registrations;
//   - cel:     the admission policies that `capz-encryption-webhook cel` compiles from the same
//     policy, no webhook (when the binary has the `cel` subcommand);
//   - cel-validating: only the ValidatingAdmissionPolicies of cel (what the injection costs is the
//     difference);
//   - cel+webhook: chart value cel.mode=cel-and-data-webhook: `serve --cel-sync` keeps the compiled
//     policies, and the webhook configurations send it only the objects that need data.
//
// It prints, per mode, the median over the rounds of each round's p50/p90/p99 latency and
// throughput, the ratios of the median p50 and p99 against no admission, the no-op pair and the
// webhook alone, and, from the webhook process's own /proc accounting, its CPU per create and its
// resident memory. `make bench` runs it; nothing here is asserted. -policy measures another policy
// (e.g. docs/examples/palette-pack-values.yaml).
//
// -fill N first creates N Clusters, AzureClusters and MachineDeployments with their status, as in a
// management cluster of N workload clusters; every start of the webhook then reports its start to
// Ready (the informers' initial lists), the CPU it and the apiserver spent meanwhile, and its RSS and
// Go heap at Ready and after the load (with -profile-dir, also a heap profile at Ready and a CPU
// profile of the start).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/procfs"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

const (
	releaseNamespace = "capz-encryption-webhook-system"
	benchNamespace   = "bench"
)

// benchPolicy: what a platform team runs: customer-managed keys required, a default per region.
var benchPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
allowedDESSubscriptions: [` + testsupport.Subscription + `]
defaults:
- name: eastus
  regions: [eastus]
  diskEncryptionSetID: ` + testsupport.DESID("keys-eastus", "des-eastus") + `
  encryptionAtHost: true
`

type options struct {
	creates, clients, rounds int
	modes                    string
	policy                   string
	repoRoot                 string
	// profileDir, when set, receives CPU and allocation profiles of the webhook taken during its
	// load, for `go tool pprof`.
	profileDir     string
	profileSeconds int
	// fill is how many Clusters, AzureClusters and MachineDeployments exist before the webhook
	// starts: what its informers list and keep.
	fill int
	// managementCRDs installs CAPI's core CRDs as a management cluster has them, so that an
	// unbound template pays for the live lookup of its referrers (clusterinfo.CacheStore.Bind).
	managementCRDs bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop-server" {
		if err := runNoop(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "noop-server:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.creates, "creates", 400, "creates per mode and round")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; every round measures every mode once, in turn")
	flag.StringVar(&o.modes, "modes", "none,noop,noop-patch,noop-cr-patch,webhook,cel", "modes to measure, comma-separated (none, noop, noop-patch, noop-cr, noop-cr-patch, webhook, cel, cel-validating, cel+webhook; noop-cr*: the no-op through controller-runtime's webhook.Admission)")
	flag.StringVar(&o.policy, "policy", "", "policy file (EncryptionPolicy or Palette pack values); default: a default per region, customer-managed keys required")
	flag.StringVar(&o.profileDir, "profile-dir", "", "write CPU and allocation profiles of the webhook under load into this directory")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile (keep it shorter than a round's load)")
	flag.BoolVar(&o.managementCRDs, "management-crds", false, "install CAPI's core CRDs (MachineDeployment, MachineSet, ClusterClass, Machine, MachinePool), as a management cluster has them: the benchmark's templates, which nothing references, then cost the webhook a live lookup of their referrers")
	flag.IntVar(&o.fill, "fill", 0, "before the rounds, create this many Clusters, AzureClusters and MachineDeployments (with status) for the webhook's informers to list and keep")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// --- the no-op webhook ------------------------------------------------------------------------------

// runNoop serves /mutate and /validate, allowing everything: the cheapest webhook a Go program can
// be, over the same TLS as ours (certificates from the same directory, TLS 1.2+, HTTP/1.1).
func runNoop(args []string) error {
	fs := flag.NewFlagSet("noop-server", flag.ContinueOnError)
	certDir := fs.String("cert-dir", "", "directory with tls.crt and tls.key")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	patch := fs.String("patch", "", "JSON patch the mutating half answers with (empty: none)")
	framework := fs.Bool("controller-runtime", false, "answer through controller-runtime's webhook.Admission (its decoding and encoding of the review), as our webhook does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(*certDir, "tls.crt"), filepath.Join(*certDir, "tls.key"))
	if err != nil {
		return err
	}
	allow := func(patch []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
				http.Error(w, "bad review", http.StatusBadRequest)
				return
			}
			review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
			if len(patch) > 0 && review.Request.Operation == admissionv1.Create {
				pt := admissionv1.PatchTypeJSONPatch
				review.Response.Patch, review.Response.PatchType = patch, &pt
			}
			review.Request = nil
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(review)
		}
	}
	mux := http.NewServeMux()
	if *framework {
		mux.Handle("/mutate", &webhook.Admission{Handler: noopHandler{patch: []byte(*patch)}, LogConstructor: plainLog})
		mux.Handle("/validate", &webhook.Admission{Handler: noopHandler{}, LogConstructor: plainLog})
	} else {
		mux.HandleFunc("/mutate", allow([]byte(*patch)))
		mux.HandleFunc("/validate", allow(nil))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String()) // the parent reads the port from the first line
	return srv.ServeTLS(l, "", "")
}

// noopHandler allows everything through controller-runtime, with patch on CREATE when set: what the
// framework alone costs, without our policy, lookups or decision log.
type noopHandler struct{ patch []byte }

func (h noopHandler) Handle(_ context.Context, req ctrladmission.Request) ctrladmission.Response {
	resp := ctrladmission.Allowed("")
	if len(h.patch) > 0 && req.Operation == admissionv1.Create {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = h.patch, &pt
	}
	return resp
}

// plainLog is serve's per-request logger: the one it is given, unchanged.
func plainLog(base logr.Logger, _ *ctrladmission.Request) logr.Logger { return base }

// --- the run ------------------------------------------------------------------------------------------

type env struct {
	o        options
	k8s      client.Client
	tmp      string
	bin      string
	self     string
	ca       *testsupport.CA
	helm     string
	kubeconf string
	policy   string
	celYAML  []byte
	// chartPolicy are the helm arguments that give the chart the same policy (cel.mode's condition
	// depends on it).
	chartPolicy []string
}

func run(o options) error {
	assets, helm := os.Getenv("KUBEBUILDER_ASSETS"), os.Getenv("HELM")
	if assets == "" || helm == "" {
		return errors.New("KUBEBUILDER_ASSETS and HELM must be set: run `make bench`")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	o.repoRoot = root
	tmp, err := os.MkdirTemp("", "capz-ew-loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{o: o, tmp: tmp, helm: helm, bin: filepath.Join(tmp, "capz-encryption-webhook")}
	if out, err := exec.Command("go", "build", "-o", e.bin, "./cmd/capz-encryption-webhook").CombinedOutput(); err != nil {
		return fmt.Errorf("building the webhook: %w\n%s", err, out)
	}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	capiCRDs := []string{"cluster.x-k8s.io_clusters.yaml"}
	if o.managementCRDs {
		capiCRDs = append(capiCRDs, "cluster.x-k8s.io_machinesets.yaml", "cluster.x-k8s.io_clusterclasses.yaml",
			"cluster.x-k8s.io_machines.yaml", "cluster.x-k8s.io_machinepools.yaml")
	}
	if o.fill > 0 || o.managementCRDs {
		// Only with -fill or -management-crds: with MachineDeployments served, a template nothing references (the
		// benchmark's) makes the webhook list MachineDeployments live (clusterinfo.CacheStore.Bind),
		// and a consistent List waits for the apiserver's watch cache (about 100 ms here), which
		// would change what the modes without -fill measure.
		capiCRDs = append(capiCRDs, "cluster.x-k8s.io_machinedeployments.yaml")
	}
	crds, err := testsupport.CAPZCRDs(root, capiCRDs...)
	if err != nil {
		return err
	}
	te := &envtest.Environment{BinaryAssetsDirectory: assets, CRDInstallOptions: envtest.CRDInstallOptions{CRDs: crds}, ErrorIfCRDPathMissing: true}
	cfg, err := te.Start()
	if err != nil {
		return fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	defer func() { _ = te.Stop() }()
	cfg = rest.CopyConfig(cfg)
	// The clients must not be what limits throughput.
	cfg.QPS, cfg.Burst = 5000, 5000
	if e.k8s, err = client.New(cfg, client.Options{}); err != nil {
		return err
	}
	ctx := context.Background()
	for _, ns := range []string{benchNamespace, releaseNamespace} {
		if err := e.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	user, err := te.AddUser(envtest.User{Name: "capz-encryption-webhook", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	e.kubeconf, e.policy = filepath.Join(tmp, "kubeconfig"), filepath.Join(tmp, "policy.yaml")
	if err := os.WriteFile(e.kubeconf, kc, 0o600); err != nil {
		return err
	}
	policyDoc := []byte(benchPolicy)
	if o.policy != "" {
		if policyDoc, err = os.ReadFile(o.policy); err != nil {
			return err
		}
	}
	if err := os.WriteFile(e.policy, policyDoc, 0o600); err != nil {
		return err
	}
	if e.chartPolicy, err = chartPolicyArgs(policyDoc); err != nil {
		return err
	}
	if e.ca, err = testsupport.NewCA(filepath.Join(tmp, "certs")); err != nil {
		return err
	}
	modes := strings.Split(o.modes, ",")
	if slices.ContainsFunc(modes, func(m string) bool { return strings.HasPrefix(m, "cel") }) {
		out, err := exec.Command(e.bin, "cel", "--policy", e.policy).Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadbench: skipping mode cel: `%s cel` failed: %v\n", filepath.Base(e.bin), err)
			modes = slices.DeleteFunc(modes, func(m string) bool { return strings.HasPrefix(m, "cel") })
		}
		e.celYAML = out
	}
	if err := e.fill(ctx, o.fill); err != nil {
		return err
	}
	results := map[string]*modeResult{}
	for r := range o.rounds {
		for _, m := range modes {
			res, err := e.measure(ctx, m, r)
			if err != nil {
				return fmt.Errorf("round %d, mode %s: %w", r+1, m, err)
			}
			if results[m] == nil {
				results[m] = &modeResult{mode: m}
			}
			results[m].add(res)
		}
	}
	report(os.Stdout, o, modes, results)
	return nil
}

// modeResult gathers the rounds of one mode.
type modeResult struct {
	mode      string
	latencies []time.Duration
	wall      time.Duration
	creates   int
	cpu       float64 // seconds of the webhook process, over all rounds
	calls     float64 // admission calls it answered
	// planeCPU is the CPU seconds kube-apiserver and etcd spent during the load: what the webhook's
	// answers cost the apiserver (decoding them, applying patches) shows here, not in the webhook.
	planeCPU float64
	rssMax   int
	// memory is, per round, the webhook's start to Ready and its memory then and after the load.
	memory []memoryStats
	// rounds are each round's percentiles and throughput; the report takes their medians.
	rounds []roundStats
}

// memoryStats are one start of the webhook: start to Ready (caches synced), and its resident memory
// and Go heap in use (go_memstats_heap_inuse_bytes) when Ready and after the round's load.
type memoryStats struct {
	ready                                  time.Duration
	readyCPU, planeCPU, readyAnon          float64
	readyRSS, readyHeap, loadRSS, loadHeap float64
}

type roundStats struct {
	p50, p90, p99 time.Duration
	perSecond     float64
}

func (m *modeResult) add(r *modeResult) {
	sorted := slices.Clone(r.latencies)
	slices.Sort(sorted)
	m.rounds = append(m.rounds, roundStats{p50: percentile(sorted, .5), p90: percentile(sorted, .9), p99: percentile(sorted, .99),
		perSecond: float64(len(sorted)) / r.wall.Seconds()})
	m.latencies = append(m.latencies, r.latencies...)
	m.wall += r.wall
	m.creates += r.creates
	m.cpu += r.cpu
	m.calls += r.calls
	m.planeCPU += r.planeCPU
	m.rssMax = max(m.rssMax, r.rssMax)
	m.memory = append(m.memory, r.memory...)
}

func (e *env) measure(ctx context.Context, mode string, round int) (*modeResult, error) {
	res := &modeResult{mode: mode}
	var proc *exec.Cmd
	var wp *webhookProc
	pprofPort := 0
	switch mode {
	case "none":
	case "noop", "noop-patch", "noop-cr", "noop-cr-patch":
		cmd, addr, err := e.startNoop(strings.HasSuffix(mode, "-patch"), strings.HasPrefix(mode, "noop-cr"))
		if err != nil {
			return nil, err
		}
		proc = cmd
		if err := e.installWebhooks(ctx, "https://"+addr); err != nil {
			return nil, err
		}
	case "webhook":
		w, err := e.startWebhook()
		if err != nil {
			return nil, err
		}
		proc, wp = w.cmd, w
		pprofPort = w.port + 1
		if err := e.installWebhooks(ctx, fmt.Sprintf("https://127.0.0.1:%d", w.port)); err != nil {
			return nil, err
		}
	case "cel", "cel-validating":
		if err := e.applyYAML(ctx, e.celYAML, mode == "cel-validating"); err != nil {
			return nil, err
		}
	case "cel+webhook":
		w, err := e.startWebhook("--cel-sync", "--cel-namespace", releaseNamespace, "--leader-election-namespace", releaseNamespace,
			"--cel-sync-interval", "500ms")
		if err != nil {
			return nil, err
		}
		proc, wp = w.cmd, w
		if err := e.installWebhooks(ctx, fmt.Sprintf("https://127.0.0.1:%d", w.port), append([]string{"--set", "cel.mode=cel-and-data-webhook"}, e.chartPolicy...)...); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	defer func() {
		// The process first: with --cel-sync it would put back the admission policies removed next.
		if proc != nil {
			_ = proc.Process.Signal(os.Interrupt)
			_ = proc.Wait()
		}
		e.removeAdmission(context.Background())
	}()
	// Warm up (connections, caches) and wait until the registrations are in force.
	if err := e.warm(ctx, mode, round); err != nil {
		return nil, err
	}
	var before procfs.ProcStat
	if proc != nil {
		p, err := procfs.NewProc(proc.Process.Pid)
		if err != nil {
			return nil, err
		}
		if before, err = p.Stat(); err != nil {
			return nil, err
		}
	}
	planeBefore := controlPlaneCPU()
	var profiled sync.WaitGroup
	if e.o.profileDir != "" && pprofPort != 0 {
		profiled.Add(1)
		go func() {
			defer profiled.Done()
			e.fetchProfile(pprofPort, fmt.Sprintf("profile?seconds=%d", e.o.profileSeconds), fmt.Sprintf("cpu-round%d.pprof", round+1))
		}()
	}
	start := time.Now()
	lat, err := e.load(ctx, fmt.Sprintf("%s-r%d", objName(mode), round))
	if err != nil {
		return nil, err
	}
	profiled.Wait()
	if e.o.profileDir != "" && pprofPort != 0 {
		e.fetchProfile(pprofPort, "allocs", fmt.Sprintf("allocs-round%d.pprof", round+1))
	}
	res.wall = time.Since(start)
	res.planeCPU = controlPlaneCPU() - planeBefore
	res.latencies, res.creates = lat, len(lat)
	if proc != nil {
		p, _ := procfs.NewProc(proc.Process.Pid)
		after, err := p.Stat()
		if err != nil {
			return nil, err
		}
		res.cpu = after.CPUTime() - before.CPUTime()
		// Per create, whatever the webhook was asked: with cel.mode's condition it may be asked
		// nothing, and its CEL sync runs too. The report also gives the cost per admission call
		// where every create is exactly one mutating and one validating call.
		res.calls = float64(len(lat))
		res.rssMax = after.ResidentMemory()
	}
	if wp != nil {
		res.memory = append(res.memory, memoryStats{ready: wp.ready, readyCPU: wp.readyCPU, planeCPU: wp.planeCPU, readyRSS: wp.readyRSS, readyAnon: wp.readyAnon, readyHeap: wp.readyHeap,
			loadRSS: float64(res.rssMax), loadHeap: heapInUse(wp.metricsPort)})
	}
	return res, nil
}

// template is a CAPZ AzureMachineTemplate as users write them: no encryption settings, so that the
// webhook injects the eastus default and then validates the result.
func template(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate",
		"metadata": map[string]any{"name": name, "namespace": benchNamespace,
			"annotations": map[string]any{"capz-encryption-webhook.io/location": "eastus"}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"vmSize": "Standard_D4s_v3",
			"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": int64(128), "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}},
			"dataDisks": []any{map[string]any{"nameSuffix": "etcddisk", "diskSizeGB": int64(256), "lun": int64(0),
				"managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}},
		}}},
	}}
	return u
}

func (e *env) warm(ctx context.Context, mode string, round int) error {
	// The registrations are in force once creates go through them: a malformed DES ID is refused
	// in every mode but none and noop (in the cel modes by a compiled policy), and the default is
	// injected by the webhook, or by the compiled policies when the policy has one for every region
	// (then they compile its injection).
	enforcing := mode != "none" && !strings.HasPrefix(mode, "noop")
	wantInjected := mode == "webhook" || strings.HasSuffix(mode, "-patch") || mode == "cel+webhook" || mode == "cel" && bytes.Contains(e.celYAML, []byte("kind: MutatingAdmissionPolicyBinding"))
	if mode == "cel+webhook" {
		// The webhook injects too, so only the syncer's objects say that the compiled injection is
		// there: wait for all of them, then for the apiserver to load them.
		if err := e.waitCompiled(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		u := template(fmt.Sprintf("warm-%s-r%d-%d", objName(mode), round, i))
		err := e.k8s.Create(ctx, u)
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("warm-up create: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		injected := u.GetAnnotations()["capz-encryption-webhook.io/injected"] != ""
		bad := template(fmt.Sprintf("warm-bad-%s-r%d-%d", objName(mode), round, i))
		if err := unstructured.SetNestedField(bad.Object, "des-name-only", "spec", "template", "spec", "osDisk", "managedDisk", "diskEncryptionSet", "id"); err != nil {
			return err
		}
		err = e.k8s.Create(ctx, bad, client.DryRunAll)
		refused := err != nil
		// In the cel modes the compiled policies refuse it, before any webhook is asked.
		if strings.HasPrefix(mode, "cel") && (err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy")) {
			refused = false
		}
		if injected == wantInjected && refused == enforcing && i >= 20 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mode %s not in force after 60s (injected=%v, malformed DES refused=%v)", mode, injected, refused)
		}
	}
}

// waitCompiled waits until the cluster holds every object `cel` compiled (the syncer applies the
// same), and a moment for the apiserver's informers to pick them up.
func (e *env) waitCompiled(ctx context.Context) error {
	objs, err := chart.Decode(e.celYAML)
	if err != nil {
		return err
	}
	want := map[string]int{}
	for _, o := range objs {
		want[o.GetKind()]++
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := ""
		for kind, n := range want {
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion(objs[0].GetAPIVersion())
			list.SetKind(kind + "List")
			if err := e.k8s.List(ctx, list, client.MatchingLabels{"app.kubernetes.io/managed-by": "capz-encryption-webhook"}); err != nil {
				return err
			}
			if len(list.Items) != n {
				missing = fmt.Sprintf("%d of %d %s", len(list.Items), n, kind)
			}
		}
		if missing == "" {
			time.Sleep(2 * time.Second)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the compiled policies are not all applied after 60s: %s", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// objName is a mode as object names can hold it (cel+webhook).
func objName(mode string) string { return strings.ReplaceAll(mode, "+", "-") }

// load creates o.creates templates from o.clients goroutines and returns each create's latency.
func (e *env) load(ctx context.Context, prefix string) ([]time.Duration, error) {
	var next atomic.Int64
	lat := make([]time.Duration, e.o.creates)
	errs := make(chan error, e.o.clients)
	var wg sync.WaitGroup
	for range e.o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= e.o.creates {
					return
				}
				u := template(fmt.Sprintf("%s-%d", prefix, i))
				start := time.Now()
				if err := e.k8s.Create(ctx, u); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return lat, nil
}

// --- processes and registrations --------------------------------------------------------------------

func (e *env) startNoop(patched, framework bool) (*exec.Cmd, string, error) {
	cmd := exec.Command(e.self, "noop-server", "--cert-dir", e.ca.Dir)
	if framework {
		cmd.Args = append(cmd.Args, "--controller-runtime")
	}
	if patched {
		p, err := e.benchPatch()
		if err != nil {
			return nil, "", err
		}
		cmd.Args = append(cmd.Args, "--patch", string(p))
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line := make([]byte, 64)
	n, err := stdout.Read(line)
	if err != nil {
		return nil, "", err
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, strings.TrimSpace(string(line[:n])), nil
}

// webhookProc is a running `serve`: its process, ports, and what it took to get Ready.
type webhookProc struct {
	cmd                 *exec.Cmd
	port, metricsPort   int
	ready               time.Duration
	readyRSS, readyHeap float64 // bytes, when Ready: the caches have just synced
	readyAnon           float64 // of readyRSS, anonymous memory
	// readyCPU and planeCPU are the CPU seconds the webhook, and kube-apiserver and etcd, spent
	// from its start to Ready: which side the start waits for.
	readyCPU, planeCPU float64
}

// startWebhook runs `serve` as the chart runs it (JSON logs to stdout, discarded here) and returns
// its webhook port and how long it took from start to Ready, and its memory then.
//
// The pprof endpoints listen on the webhook port + 1 when profiles are asked for. The metrics are
// served over plain HTTP, for the Go heap figures.
func (e *env) startWebhook(extra ...string) (*webhookProc, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.bin, "serve", "--kubeconfig", e.kubeconf, "--cert-dir", e.ca.Dir, "--policy", e.policy,
		"--webhook-host", "127.0.0.1", "--webhook-port", fmt.Sprint(ports[0]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--metrics-secure=false",
		"--shutdown-delay", "0s")
	if e.o.profileDir != "" {
		cmd.Args = append(cmd.Args, "--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[0]+1))
	}
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	planeBefore := controlPlaneCPU()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var startProfile sync.WaitGroup
	if e.o.profileDir != "" {
		// The start's CPU profile: what the informers' initial lists cost the webhook.
		startProfile.Add(1)
		go func() {
			defer startProfile.Done()
			for time.Since(start) < 10*time.Second {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]+1)); err == nil {
					_ = c.Close()
					e.fetchProfile(ports[0]+1, fmt.Sprintf("profile?seconds=%d", e.o.profileSeconds), fmt.Sprintf("cpu-start-%d.pprof", cmd.Process.Pid))
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer startProfile.Wait()
	for time.Since(start) < 120*time.Second {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w := &webhookProc{cmd: cmd, port: ports[0], metricsPort: ports[2], ready: time.Since(start)}
				w.planeCPU = controlPlaneCPU() - planeBefore
				w.readyRSS, w.readyAnon, w.readyCPU = processRSS(cmd.Process.Pid)
				w.readyHeap = heapInUse(ports[2])
				if e.o.profileDir != "" {
					e.fetchProfile(ports[0]+1, "heap", fmt.Sprintf("heap-ready-%d.pprof", cmd.Process.Pid))
				}
				return w, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, errors.New("the webhook was not ready within 120s")
}

// processRSS is the resident memory of a process, in bytes, of which anonymous (the rest are
// pages of the executable and other files), and the CPU seconds it has used (0 when unknown).
func processRSS(pid int) (rss, anon, cpu float64) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, 0
	}
	st, err := p.Stat()
	if err != nil {
		return 0, 0, 0
	}
	if sm, err := p.ProcSMapsRollup(); err == nil {
		anon = float64(sm.Anonymous)
	}
	return float64(st.ResidentMemory()), anon, st.CPUTime()
}

// heapInUse is go_memstats_heap_inuse_bytes from the webhook's metrics (0 when unknown).
func heapInUse(metricsPort int) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			var f float64
			if _, err := fmt.Sscan(strings.TrimSpace(v), &f); err == nil {
				return f
			}
		}
	}
	return 0
}

// benchPatch is the JSON patch our webhook makes for the benchmark's template, as `check -o json`
// reports it: the no-op answers with it in mode noop-patch.
func (e *env) benchPatch() ([]byte, error) {
	tmpl, err := json.Marshal(template("patch-probe").Object)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.bin, "check", "-f", "-", "--policy", e.policy, "-o", "json")
	cmd.Stdin = bytes.NewReader(tmpl)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("check on the benchmark template: %w", err)
	}
	var results []struct {
		Patch json.RawMessage `json:"patch"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		return nil, fmt.Errorf("check -o json on the benchmark template: %w", err)
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("check -o json on the benchmark template: %d results, want 1", len(results))
	}
	return results[0].Patch, nil
}

// fetchProfile saves /debug/pprof/<what> of the webhook into the profile directory.
func (e *env) fetchProfile(port int, what, file string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s", port, what))
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: profile:", err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK {
		err = os.WriteFile(filepath.Join(e.o.profileDir, file), data, 0o600)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "loadbench: profile", what, resp.Status, err)
	}
}

func (e *env) installWebhooks(ctx context.Context, baseURL string, helmArgs ...string) error {
	m, v, err := chart.WebhooksForURL(e.helm, releaseNamespace, baseURL, e.ca.PEM, helmArgs...)
	if err != nil {
		return err
	}
	if err := e.k8s.Create(ctx, m); err != nil {
		return err
	}
	return e.k8s.Create(ctx, v)
}

// applyYAML creates every document of a multi-document YAML stream (only the validating admission
// policies and their bindings, with validatingOnly).
func (e *env) applyYAML(ctx context.Context, data []byte, validatingOnly bool) error {
	objs, err := chart.Decode(data)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if validatingOnly && !strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
			continue
		}
		if err := e.k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// removeAdmission deletes every webhook configuration and admission policy the modes create.
func (e *env) removeAdmission(ctx context.Context) {
	for _, kind := range []string{"MutatingWebhookConfigurationList", "ValidatingWebhookConfigurationList",
		"ValidatingAdmissionPolicyBindingList", "ValidatingAdmissionPolicyList",
		"MutatingAdmissionPolicyBindingList", "MutatingAdmissionPolicyList"} {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("admissionregistration.k8s.io/v1")
		list.SetKind(kind)
		if err := e.k8s.List(ctx, list); err != nil {
			continue
		}
		for i := range list.Items {
			if err := e.k8s.Delete(ctx, &list.Items[i]); err != nil && !apierrors.IsNotFound(err) {
				fmt.Fprintln(os.Stderr, "loadbench: cleanup:", err)
			}
		}
	}
	// The apiserver drops registrations a moment after they are deleted.
	time.Sleep(time.Second)
}

// chartPolicyArgs gives the chart the policy of the run, as values: cel.mode's webhook condition
// depends on it.
func chartPolicyArgs(doc []byte) ([]string, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	key, v := "policy", any(m)
	if cloud, ok := m["cloud"]; ok {
		key, v = "cloud", cloud
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return []string{"--set-json", key + "=" + string(raw)}, nil
}

// controlPlaneCPU sums the CPU seconds used so far by this process's kube-apiserver and etcd
// children (envtest starts them), leaving out any other control plane on the machine.
func controlPlaneCPU() float64 {
	procs, err := procfs.AllProcs()
	if err != nil {
		return 0
	}
	self := os.Getpid()
	total := 0.0
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || st.PPID != self || (st.Comm != "kube-apiserver" && st.Comm != "etcd") {
			continue
		}
		total += st.CPUTime()
	}
	return total
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// --- the report ---------------------------------------------------------------------------------------

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// median of the rounds' values of one statistic.
func median[T time.Duration | float64](rounds []roundStats, f func(roundStats) T) T {
	v := make([]T, 0, len(rounds))
	for _, r := range rounds {
		v = append(v, f(r))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func report(w io.Writer, o options, modes []string, results map[string]*modeResult) {
	var b bytes.Buffer
	pol := o.policy
	if pol == "" {
		pol = "built-in (a default per region, customer-managed keys required)"
	}
	fmt.Fprintf(&b, "AzureMachineTemplate creates through kube-apiserver: policy %s; %d clients, %d creates per mode and round, %d rounds.\n"+
		"Latencies and creates/s are the medians over the rounds of each round's value; ratios are of those medians.\n\n",
		pol, o.clients, o.creates, o.rounds)
	fmt.Fprintf(&b, "| mode | creates | p50 | p90 | p99 | creates/s | p50 vs none | p99 vs none | p50 vs noop | p50 vs webhook | p99 vs webhook | webhook CPU per create | per admission call | webhook RSS | apiserver+etcd CPU per create |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	p50 := func(r roundStats) time.Duration { return r.p50 }
	p99 := func(r roundStats) time.Duration { return r.p99 }
	base := func(mode string, f func(roundStats) time.Duration) time.Duration {
		if r := results[mode]; r != nil {
			return median(r.rounds, f)
		}
		return 0
	}
	ratio := func(a, base time.Duration) string {
		if base == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", float64(a)/float64(base))
	}
	for _, m := range modes {
		r := results[m]
		if r == nil {
			continue
		}
		m50, m99 := median(r.rounds, p50), median(r.rounds, p99)
		cpu, perCall, rss := "-", "-", "-"
		if r.calls > 0 {
			cpu = fmt.Sprintf("%.0f µs", r.cpu/r.calls*1e6)
			rss = fmt.Sprintf("%.0f MiB", float64(r.rssMax)/(1<<20))
			if !strings.HasPrefix(m, "cel") {
				// One mutating and one validating call per create: our patch triggers no
				// reinvocation, since no other mutating webhook runs after it.
				perCall = fmt.Sprintf("%.0f µs", r.cpu/r.calls/2*1e6)
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %.0f µs |\n", m, r.creates, ms(m50),
			ms(median(r.rounds, func(r roundStats) time.Duration { return r.p90 })), ms(m99),
			median(r.rounds, func(r roundStats) float64 { return r.perSecond }),
			ratio(m50, base("none", p50)), ratio(m99, base("none", p99)), ratio(m50, base("noop", p50)),
			ratio(m50, base("webhook", p50)), ratio(m99, base("webhook", p99)), cpu, perCall, rss, r.planeCPU/float64(r.creates)*1e6)
	}
	fmt.Fprintf(&b, "\np50 per round:\n")
	for _, m := range modes {
		if r := results[m]; r != nil {
			v := make([]string, 0, len(r.rounds))
			for _, x := range r.rounds {
				v = append(v, ms(x.p50))
			}
			fmt.Fprintf(&b, "  %-12s %s\n", m, strings.Join(v, ", "))
		}
	}
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	for _, m := range []string{"webhook", "cel+webhook"} {
		if r := results[m]; r != nil && len(r.memory) > 0 {
			fmt.Fprintf(&b, "\n%s, per start (%d Clusters, AzureClusters and MachineDeployments filled):\n\n", m, o.fill)
			fmt.Fprintf(&b, "| round | start to Ready | webhook CPU to Ready | apiserver+etcd CPU meanwhile | RSS at Ready (anonymous) | heap in use at Ready | RSS after load | heap in use after load |\n|---|---|---|---|---|---|---|---|\n")
			for i, s := range r.memory {
				fmt.Fprintf(&b, "| %d | %s | %.2f s | %.2f s | %s (%s) | %s | %s | %s |\n", i+1, ms(s.ready), s.readyCPU, s.planeCPU,
					mib(s.readyRSS), mib(s.readyAnon), mib(s.readyHeap), mib(s.loadRSS), mib(s.loadHeap))
			}
		}
	}
	_, _ = w.Write(b.Bytes())
}

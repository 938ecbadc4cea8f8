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
//   - cel:     the ValidatingAdmissionPolicies that `capz-encryption-webhook cel` compiles from the
//     same policy, no webhook (when the binary has the `cel` subcommand).
//
// It prints p50/p90/p99 latency, throughput and the ratios against the no-op pair, and, from the
// webhook process's own /proc accounting, its CPU per admission call and its resident memory.
// `make bench` runs it; nothing here is asserted.
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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
	repoRoot                 string
	// profileDir, when set, receives CPU and allocation profiles of the webhook taken during its
	// load, for `go tool pprof`.
	profileDir     string
	profileSeconds int
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
	flag.StringVar(&o.modes, "modes", "none,noop,webhook,cel", "modes to measure, comma-separated")
	flag.StringVar(&o.profileDir, "profile-dir", "", "write CPU and allocation profiles of the webhook under load into this directory")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile (keep it shorter than a round's load)")
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
	mux.HandleFunc("/mutate", allow([]byte(*patch)))
	mux.HandleFunc("/validate", allow(nil))
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
	crds, err := testsupport.CAPZCRDs(root, "cluster.x-k8s.io_clusters.yaml")
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
	if err := os.WriteFile(e.policy, []byte(benchPolicy), 0o600); err != nil {
		return err
	}
	if e.ca, err = testsupport.NewCA(filepath.Join(tmp, "certs")); err != nil {
		return err
	}
	modes := strings.Split(o.modes, ",")
	if slices.Contains(modes, "cel") {
		out, err := exec.Command(e.bin, "cel", "--policy", e.policy).Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadbench: skipping mode cel: `%s cel` failed: %v\n", filepath.Base(e.bin), err)
			modes = slices.DeleteFunc(modes, func(m string) bool { return m == "cel" })
		}
		e.celYAML = out
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
	ready    []time.Duration
}

func (m *modeResult) add(r *modeResult) {
	m.latencies = append(m.latencies, r.latencies...)
	m.wall += r.wall
	m.creates += r.creates
	m.cpu += r.cpu
	m.calls += r.calls
	m.planeCPU += r.planeCPU
	m.rssMax = max(m.rssMax, r.rssMax)
	m.ready = append(m.ready, r.ready...)
}

func (e *env) measure(ctx context.Context, mode string, round int) (*modeResult, error) {
	res := &modeResult{mode: mode}
	var proc *exec.Cmd
	pprofPort := 0
	switch mode {
	case "none":
	case "noop", "noop-patch":
		cmd, addr, err := e.startNoop(mode == "noop-patch")
		if err != nil {
			return nil, err
		}
		proc = cmd
		if err := e.installWebhooks(ctx, "https://"+addr); err != nil {
			return nil, err
		}
	case "webhook":
		cmd, port, ready, err := e.startWebhook()
		if err != nil {
			return nil, err
		}
		proc = cmd
		pprofPort = port + 1
		res.ready = append(res.ready, ready)
		if err := e.installWebhooks(ctx, fmt.Sprintf("https://127.0.0.1:%d", port)); err != nil {
			return nil, err
		}
	case "cel":
		if err := e.applyYAML(ctx, e.celYAML); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	defer func() {
		e.removeAdmission(context.Background())
		if proc != nil {
			_ = proc.Process.Signal(os.Interrupt)
			_ = proc.Wait()
		}
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
	lat, err := e.load(ctx, fmt.Sprintf("%s-r%d", mode, round))
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
		// Every create is one mutating and one validating call, to whichever webhook pair runs (our patch does
		// not trigger a reinvocation: no other mutating webhook runs after it).
		res.calls = float64(2 * len(lat))
		res.rssMax = after.ResidentMemory()
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
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		u := template(fmt.Sprintf("warm-%s-r%d-%d", mode, round, i))
		err := e.k8s.Create(ctx, u)
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("warm-up create: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// The registrations are in force once a create went through them: the webhook injected the
		// default; the others leave the object as sent.
		injected := u.GetAnnotations()["capz-encryption-webhook.io/injected"] != ""
		if (mode == "webhook" || mode == "noop-patch") == injected && i >= 20 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mode %s not in force after 30s (injected=%v)", mode, injected)
		}
	}
}

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

func (e *env) startNoop(patched bool) (*exec.Cmd, string, error) {
	cmd := exec.Command(e.self, "noop-server", "--cert-dir", e.ca.Dir)
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

// startWebhook runs `serve` as the chart runs it (JSON logs to stdout, discarded here) and returns
// its webhook port and how long it took from start to Ready.
//
// The pprof endpoints listen on the webhook port + 1 when profiles are asked for.
func (e *env) startWebhook() (*exec.Cmd, int, time.Duration, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, 0, 0, err
	}
	cmd := exec.Command(e.bin, "serve", "--kubeconfig", e.kubeconf, "--cert-dir", e.ca.Dir, "--policy", e.policy,
		"--webhook-host", "127.0.0.1", "--webhook-port", fmt.Sprint(ports[0]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--shutdown-delay", "0s")
	if e.o.profileDir != "" {
		cmd.Args = append(cmd.Args, "--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[0]+1))
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, err
	}
	for time.Since(start) < 60*time.Second {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, ports[0], time.Since(start), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, 0, 0, errors.New("the webhook was not ready within 60s")
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

func (e *env) installWebhooks(ctx context.Context, baseURL string) error {
	m, v, err := chart.WebhooksForURL(e.helm, releaseNamespace, baseURL, e.ca.PEM)
	if err != nil {
		return err
	}
	if err := e.k8s.Create(ctx, m); err != nil {
		return err
	}
	return e.k8s.Create(ctx, v)
}

// applyYAML creates every document of a multi-document YAML stream.
func (e *env) applyYAML(ctx context.Context, data []byte) error {
	objs, err := chart.Decode(data)
	if err != nil {
		return err
	}
	for _, o := range objs {
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

func report(w io.Writer, o options, modes []string, results map[string]*modeResult) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "AzureMachineTemplate creates through kube-apiserver: %d clients, %d creates per mode and round, %d rounds\n\n",
		o.clients, o.creates, o.rounds)
	fmt.Fprintf(&b, "| mode | creates | p50 | p90 | p99 | creates/s | p50 vs noop | p99 vs noop | webhook CPU per admission call | webhook RSS | apiserver+etcd CPU per create |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	var noop50, noop99 time.Duration
	if n := results["noop"]; n != nil {
		s := slices.Clone(n.latencies)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		noop50, noop99 = percentile(s, .5), percentile(s, .99)
	}
	for _, m := range modes {
		r := results[m]
		if r == nil {
			continue
		}
		s := slices.Clone(r.latencies)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		p50, p90, p99 := percentile(s, .5), percentile(s, .9), percentile(s, .99)
		ratio := func(a, base time.Duration) string {
			if base == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f×", float64(a)/float64(base))
		}
		cpu, rss := "-", "-"
		if r.calls > 0 {
			cpu = fmt.Sprintf("%.0f µs", r.cpu/r.calls*1e6)
			rss = fmt.Sprintf("%.0f MiB", float64(r.rssMax)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.0f | %s | %s | %s | %s | %.0f µs |\n", m, r.creates, ms(p50), ms(p90), ms(p99),
			float64(r.creates)/r.wall.Seconds(), ratio(p50, noop50), ratio(p99, noop99), cpu, rss, r.planeCPU/float64(r.creates)*1e6)
	}
	if r := results["webhook"]; r != nil && len(r.ready) > 0 {
		fmt.Fprintf(&b, "\nwebhook start to Ready: %v\n", r.ready)
	}
	_, _ = w.Write(b.Bytes())
}

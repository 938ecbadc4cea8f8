package capzflavors

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderMatchesClusterctl compares Render with the real `clusterctl generate cluster --from`,
// byte for byte, for every flavor in both regions. Building clusterctl takes minutes, so the test
// runs only when CLUSTERCTL names a binary: `make test-unit` builds the one go.mod implies with
// hack/clusterctl.sh and sets it.
func TestRenderMatchesClusterctl(t *testing.T) {
	bin := os.Getenv("CLUSTERCTL")
	if bin == "" {
		t.Skip("set CLUSTERCTL to a clusterctl binary to compare Render with it (see README.md)")
	}
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	for _, region := range regions {
		vars := DefaultVars(region)
		for _, f := range flavors {
			t.Run(region+"/"+f.Name, func(t *testing.T) {
				want, err := Render(f, vars)
				if err != nil {
					t.Fatal(err)
				}
				// clusterctl takes its own variables as argument and flags, every other one from
				// the environment; nothing else of ours may leak in, and no kubeconfig is needed
				// for --from.
				cmd := exec.Command(bin, "generate", "cluster", vars[VarClusterName],
					"--from", f.Path,
					"--target-namespace", vars[VarNamespace],
					"--kubernetes-version", vars[VarKubernetesVersion],
					"--control-plane-machine-count", vars[VarControlPlaneMachineCount],
					"--worker-machine-count", vars[VarWorkerMachineCount])
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "none"),
					"CLUSTERCTL_DISABLE_VERSIONCHECK=true"} // no GitHub here
				for k, v := range vars {
					switch k {
					case VarClusterName, VarNamespace, VarKubernetesVersion, VarControlPlaneMachineCount, VarWorkerMachineCount:
					default:
						cmd.Env = append(cmd.Env, k+"="+v)
					}
				}
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				got, err := cmd.Output()
				if err != nil {
					t.Fatalf("clusterctl: %v\n%s", err, stderr.String())
				}
				if !bytes.Equal(got, want) {
					t.Errorf("Render differs from clusterctl at byte %d:\nclusterctl: %q\nRender:     %q",
						firstDiff(got, want), around(got, firstDiff(got, want)), around(want, firstDiff(got, want)))
				}
			})
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func around(b []byte, i int) string {
	s := string(b[max(0, i-80):min(len(b), i+80)])
	return strings.ReplaceAll(s, "\n", "⏎")
}

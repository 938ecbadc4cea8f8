package chart_test

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// There is no Docker engine in CI, so the image is checked by reading the Dockerfile: its build stage
// must compile what `make build` compiles, with the same flags, and its final stage must be the
// distroless nonroot image running the binary, without a shell.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

type stage struct {
	from  string // image reference
	name  string // AS name
	instr []instruction
}

func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var stages []stage
	var logical strings.Builder
	flush := func() {
		line := strings.TrimSpace(logical.String())
		logical.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var s stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					s.name = f[i+1]
					i++
				default:
					s.from = f[i]
				}
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			return
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	for _, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") && logical.Len() == 0 {
			continue // comment (parser directives included)
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction is dropped, as Docker does
		}
		if strings.HasSuffix(trimmed, "\\") {
			logical.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		logical.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// shellWords splits a command line as a POSIX shell would for the simple cases here: blanks separate
// words, single and double quotes group.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// goBuild is a `go build` command line, taken apart.
type goBuild struct {
	env      map[string]string
	trimpath bool
	ldflags  []string          // without the -X ones
	xvars    map[string]string // -X key=value
	pkg      string
}

func parseGoBuild(t *testing.T, words []string) goBuild {
	t.Helper()
	g := goBuild{env: map[string]string{}, xvars: map[string]string{}}
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		k, v, _ := strings.Cut(words[i], "=")
		g.env[k] = v
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("not a go build command: %q", words)
	}
	for i += 2; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-trimpath":
			g.trimpath = true
		case w == "-ldflags":
			i++
			ld := strings.Fields(words[i])
			for j := 0; j < len(ld); j++ {
				if ld[j] == "-X" && j+1 < len(ld) {
					k, v, _ := strings.Cut(ld[j+1], "=")
					g.xvars[k] = v
					j++
					continue
				}
				g.ldflags = append(g.ldflags, ld[j])
			}
		case w == "-o":
			i++
		case strings.HasPrefix(w, "-"):
			t.Fatalf("unexpected go build flag %s in %q", w, words)
		default:
			if g.pkg != "" {
				t.Fatalf("two packages in %q", words)
			}
			g.pkg = w
		}
	}
	return g
}

func TestDockerfileBuildsWhatMakeBuilds(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, readFile(t, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want build + final", len(stages))
	}
	build, final := stages[0], stages[1]

	// The toolchain image follows go.mod's go directive (major.minor).
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, "go.mod"))
	if goLine == nil {
		t.Fatal("no go directive in go.mod")
	}
	if want := "golang:" + goLine[1]; build.from != want && !strings.HasPrefix(build.from, want+".") && !strings.HasPrefix(build.from, want+"@") && !strings.HasPrefix(build.from, want+"-") {
		t.Errorf("build stage FROM %s, want %s (go.mod says go %s)", build.from, want, goLine[1])
	}

	// The Dockerfile's go build.
	args := map[string]bool{}
	var docker *goBuild
	for _, in := range build.instr {
		switch in.cmd {
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			args[name] = true
		case "RUN":
			words := shellWords(t, in.args)
			// Drop RUN's own options (--mount=...).
			for len(words) > 0 && strings.HasPrefix(words[0], "--") {
				words = words[1:]
			}
			if idx := slices.Index(words, "go"); idx >= 0 && idx+1 < len(words) && words[idx+1] == "build" {
				if docker != nil {
					t.Fatal("two go build commands in the build stage")
				}
				g := parseGoBuild(t, words)
				docker = &g
			}
		}
	}
	if docker == nil {
		t.Fatal("no go build in the build stage")
	}

	// The Makefile's: what `make build` would run.
	cmd := exec.Command("make", "-n", "--no-print-directory", "build")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	var mk *goBuild
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "go build") {
			g := parseGoBuild(t, shellWords(t, line))
			mk = &g
		}
	}
	if mk == nil {
		t.Fatalf("make -n build runs no go build:\n%s", out)
	}

	if mk.pkg != "./cmd/capz-encryption-webhook" || docker.pkg != mk.pkg {
		t.Errorf("packages: Makefile %s, Dockerfile %s, want ./cmd/capz-encryption-webhook in both", mk.pkg, docker.pkg)
	}
	for name, g := range map[string]*goBuild{"Makefile": mk, "Dockerfile": docker} {
		if g.env["CGO_ENABLED"] != "0" {
			t.Errorf("%s: CGO_ENABLED=%q, want 0 (a static binary for distroless/static)", name, g.env["CGO_ENABLED"])
		}
		if !g.trimpath {
			t.Errorf("%s: no -trimpath", name)
		}
	}
	if !slices.Equal(mk.ldflags, docker.ldflags) {
		t.Errorf("ldflags other than -X: Makefile %v, Dockerfile %v", mk.ldflags, docker.ldflags)
	}
	if mkKeys, dKeys := sortedKeys(mk.xvars), sortedKeys(docker.xvars); !slices.Equal(mkKeys, dKeys) || len(mkKeys) == 0 {
		t.Errorf("-X variables: Makefile %v, Dockerfile %v", mkKeys, dKeys)
	}
	// Every -X names a variable that exists (the linker ignores a misspelt one) and, in the Dockerfile,
	// takes its value from a build argument.
	versionGo := readFile(t, "internal/version/version.go")
	for key, val := range docker.xvars {
		dot := strings.LastIndex(key, ".")
		pkg, name := key[:dot], key[dot+1:]
		if pkg != "github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version" {
			t.Errorf("-X %s: not a variable of internal/version", key)
		}
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(name) + `\s+=`).MatchString(versionGo) {
			t.Errorf("-X %s: internal/version/version.go declares no %s", key, name)
		}
		m := regexp.MustCompile(`^\$\{?([A-Z_]+)\}?$`).FindStringSubmatch(val)
		if len(m) < 2 || !args[m[1]] {
			t.Errorf("-X %s=%s: not a declared build ARG", key, val)
		}
	}

	// What `make docker-build` passes must be declared, or Docker ignores it with only a warning.
	cmd = exec.Command("make", "-n", "--no-print-directory", "docker-build")
	cmd.Dir = root
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n docker-build: %v\n%s", err, out)
	}
	for _, m := range regexp.MustCompile(`--build-arg[ =]([A-Z_]+)=`).FindAllStringSubmatch(string(out), -1) {
		if !args[m[1]] {
			t.Errorf("make docker-build passes --build-arg %s, which the build stage does not declare", m[1])
		}
	}

	// The final stage: distroless static, nonroot, the binary as entrypoint, no shell anywhere.
	if !regexp.MustCompile(`^gcr\.io/distroless/static:nonroot(@sha256:[0-9a-f]{64})?$`).MatchString(final.from) {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static:nonroot", final.from)
	}
	var user, entrypoint string
	var copied []string
	for _, in := range final.instr {
		switch in.cmd {
		case "RUN", "SHELL":
			t.Errorf("final stage has %s %s: the image has no shell", in.cmd, in.args)
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			f := strings.Fields(in.args)
			if !slices.Contains(f, "--from="+build.name) {
				t.Errorf("final stage copies from elsewhere than the build stage: COPY %s", in.args)
			}
			copied = append(copied, f[len(f)-1])
		}
	}
	if user != "65532:65532" && user != "nonroot" && user != "nonroot:nonroot" {
		t.Errorf("USER %q, want 65532:65532 (nonroot)", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Fatalf("ENTRYPOINT %s is not in exec form", entrypoint)
	}
	if ep[0] != "/capz-encryption-webhook" || !slices.Equal(copied, []string{ep[0]}) {
		t.Errorf("ENTRYPOINT %v, copied %v: want one binary, /capz-encryption-webhook, as the entrypoint", ep, copied)
	}

	// The chart runs the image's binary as `serve` and as the image's user.
	dep := readFile(t, "charts/capz-encryption-webhook/templates/deployment.yaml")
	if !strings.Contains(dep, "- serve\n") || !strings.Contains(dep, "runAsUser: 65532") {
		t.Error("the chart's Deployment does not run `serve` as 65532")
	}
}

// TestDockerBuildContext checks that .dockerignore lets through everything the build stage copies and
// everything ./cmd/capz-encryption-webhook needs, and nothing else at the top level.
func TestDockerBuildContext(t *testing.T) {
	root := repoRoot(t)
	var allowed []string
	excludesAll := false
	for _, line := range strings.Split(readFile(t, ".dockerignore"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "*":
			excludesAll = true
		case strings.HasPrefix(line, "!"):
			allowed = append(allowed, strings.TrimSuffix(strings.TrimPrefix(line, "!"), "/"))
		}
	}
	if !excludesAll {
		t.Error(".dockerignore is not an allow-list (it does not start from *)")
	}
	stages := parseDockerfile(t, readFile(t, "Dockerfile"))
	for _, in := range stages[0].instr {
		if in.cmd != "COPY" {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if !slices.Contains(allowed, strings.TrimSuffix(src, "/")) {
				t.Errorf("COPY %s: .dockerignore leaves it out of the build context", src)
			}
		}
	}
	// The packages of the module that the binary is built from (-e: tolerate packages that do not
	// compile right now; this is about where they live).
	cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/capz-encryption-webhook")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(dir, root), "/")
		top, _, _ := strings.Cut(rel, "/")
		if !slices.Contains(allowed, top) {
			t.Errorf("the binary needs %s, which .dockerignore leaves out", rel)
		}
		if top == "test" || top == "hack" {
			t.Errorf("the binary depends on %s", rel)
		}
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The committed man page and completions are what the command definitions make now: a flag or
// command added without 'go generate ./cmd/machping' fails here. 'machping gen' prints the same.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	for _, g := range generated {
		t.Run(g.file, func(t *testing.T) {
			var b strings.Builder
			g.gen(&b)
			committed, err := os.ReadFile(filepath.Join("doc", g.file))
			require.NoError(t, err)
			require.Equal(t, b.String(), string(committed), "doc/%s is stale: run 'go generate ./cmd/machping'", g.file)
			// Every command and each of its flags is in it (the man page escapes a name's '-').
			text := strings.ReplaceAll(b.String(), `\-`, "-")
			for _, c := range visible() {
				require.Contains(t, text, c.name)
				for _, f := range flagsOf(c) {
					require.Contains(t, b.String(), f.name, "%s's %s", c.name, f.spelled())
				}
			}
		})
	}
	for _, tc := range []struct{ args []string }{{[]string{"gen", "man"}}, {[]string{"gen", "completion", "bash"}},
		{[]string{"gen", "completion", "zsh"}}, {[]string{"gen", "completion", "fish"}}} {
		r := runMachping(t, nil, tc.args...)
		requireCode(t, r, exitOK)
		file := map[string]string{"man": "machping.1", "bash": "machping.bash", "zsh": "_machping", "fish": "machping.fish"}[tc.args[len(tc.args)-1]]
		committed, err := os.ReadFile(filepath.Join("doc", file))
		require.NoError(t, err)
		require.Equal(t, string(committed), r.stdout)
	}
	r := runMachping(t, nil, "gen", "completion", "tcsh")
	requireCode(t, r, exitError)
	require.NotContains(t, runMachping(t, nil, "help").stdout, "gen ", "gen is hidden")
}

// The bash completion completes commands and a command's flags.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	for _, tc := range []struct {
		line string // the words before the cursor, the last one being completed
		want string
	}{
		{"machping pi", "ping"},
		{"machping --json ri", "rights"},
		{"machping ping -", "-W -c -i --json --pid -q --raw --require -s --help"},
		{"machping rights --p", "--pid"},
		{"machping help ch", "check check-peer"},
		{"machping serve --r", "--raw --require"},
	} {
		script := `source doc/machping.bash; COMP_WORDS=(` + tc.line + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _machping; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", script).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, tc.want, strings.TrimSpace(string(out)), tc.line)
	}
}

// The fish completion offers the commands and each command's flags (fish's own complete -C
// answers as it would at the prompt).
func TestFishCompletion(t *testing.T) {
	fish := completionShell(t, "fish")
	for _, tc := range []struct{ line, want string }{
		{"machping pi", "ping"},
		{"machping ping -", "-c"},
		{"machping rights --p", "--pid"},
		{"machping help ch", "check"},
		{"machping help ch", "check-peer"},
		{"machping serve --r", "--require"},
	} {
		out, err := exec.Command(fish, "--no-config", "-c", "source doc/machping.fish; complete -C '"+tc.line+"'").CombinedOutput()
		require.NoError(t, err, "%s", out)
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			words = append(words, strings.SplitN(l, "\t", 2)[0])
		}
		require.Contains(t, words, tc.want, tc.line)
	}
}

// The zsh completion offers the commands and each command's flags: its function runs with
// zsh's words and CURRENT set as at the prompt, and _describe (the completion system's) stubbed
// to print what it was given.
func TestZshCompletion(t *testing.T) {
	zsh := completionShell(t, "zsh")
	for _, tc := range []struct{ words, want string }{
		{"machping pi", "ping"},
		{"machping ping -", "-c"},
		{"machping rights --p", "--pid"},
		{"machping --json ri", "rights"},
		{"machping che", "check-peer"},
		{"machping serve --r", "--require"},
	} {
		n := len(strings.Fields(tc.words))
		script := `_describe() { local arr=${@[-1]}; print -rl -- ${(P)arr}; }; source doc/_machping >/dev/null; ` +
			`words=(` + tc.words + `); CURRENT=` + strconv.Itoa(n) + `; _machping`
		out, err := exec.Command(zsh, "-f", "-c", script).CombinedOutput()
		require.NoError(t, err, "%s", out)
		var items []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			items = append(items, strings.SplitN(l, ":", 2)[0])
		}
		require.Contains(t, items, tc.want, tc.words)
	}
}

// completionShellsEnv, set by .ci/run once it has installed zsh and fish, makes the completion
// tests fail rather than skip when a shell is missing: CI must run them, while `go test ./...` on
// a fresh machine (the README's quick start) passes without those shells.
const completionShellsEnv = "MACHPORT_COMPLETION_SHELLS"

// completionShell returns the path of the named shell, skipping the test when it is not
// installed outside CI.
func completionShell(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil && os.Getenv(completionShellsEnv) == "" {
		t.Skipf("%s is not installed (.ci/run installs it and sets %s, which makes this test required)", name, completionShellsEnv)
	}
	require.NoError(t, err, "%s is set: %s must be installed", completionShellsEnv, name)
	return path
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
			// Every command and each of its flags is in it.
			for _, c := range visible() {
				require.Contains(t, b.String(), c.name)
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
		{"machping ping -", "-W -c -i --json --pid -q --raw -s --help"},
		{"machping rights --p", "--pid"},
		{"machping help ch", "check"},
	} {
		script := `source doc/machping.bash; COMP_WORDS=(` + tc.line + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _machping; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", script).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, tc.want, strings.TrimSpace(string(out)), tc.line)
	}
}

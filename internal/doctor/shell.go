package doctor

import (
	"fmt"
	"path"
	"strings"
)

// Shell is where the user applies a Fix: the operating system and the
// shell. Fix lines that set environment variables are written for it.
type Shell struct {
	// OS is a GOOS value: "windows", "darwin", "linux", ...
	OS string `json:"os"`
	// Name is the shell: "powershell" on Windows; elsewhere the base name
	// of $SHELL ("bash", "zsh", "fish"), "sh" when it is unset.
	Name string `json:"name"`
}

// DetectShell is the shell of a process on goos whose environment is
// getenv. On Windows it is PowerShell, the default terminal shell.
func DetectShell(goos string, getenv func(string) string) Shell {
	if goos == "windows" {
		return Shell{OS: goos, Name: "powershell"}
	}
	name := "sh"
	if sh := strings.TrimSpace(getenv("SHELL")); sh != "" {
		name = path.Base(sh)
	}
	return Shell{OS: goos, Name: name}
}

// envVar is one variable for a Fix line. With copyOf set it takes the
// value of that variable, so that a value holding a proxy password is
// never printed.
type envVar struct {
	name, value, copyOf string
}

// setEnv returns the lines that set vars in this shell now, and the line
// that says how to keep them in new terminals.
func (sh Shell) setEnv(vars ...envVar) []string {
	switch {
	case sh.OS == "windows":
		// Windows variable names ignore case: NO_PROXY and no_proxy are
		// one variable, so only the first of a pair is set.
		seen := map[string]bool{}
		var now, keep []string
		for _, v := range vars {
			if seen[strings.ToUpper(v.name)] {
				continue
			}
			seen[strings.ToUpper(v.name)] = true
			val := psQuote(v.value)
			if v.copyOf != "" {
				val = "$env:" + v.copyOf
			}
			now = append(now, "$env:"+v.name+"="+val)
			keep = append(keep, "setx "+v.name+" "+val)
		}
		return []string{"PowerShell: " + strings.Join(now, "; "),
			"to keep it in new windows: " + strings.Join(keep, "; ")}
	case sh.Name == "fish":
		var now, keep []string
		for _, v := range vars {
			val := shQuote(v.value)
			if v.copyOf != "" {
				val = "$" + v.copyOf
			}
			now = append(now, "set -gx "+v.name+" "+val)
			keep = append(keep, "set -Ux "+v.name+" "+val)
		}
		return []string{strings.Join(now, "; "), "to keep it: " + strings.Join(keep, "; ")}
	default:
		parts := []string{"export"}
		for _, v := range vars {
			val := shQuote(v.value)
			if v.copyOf != "" {
				val = `"$` + v.copyOf + `"`
			}
			parts = append(parts, v.name+"="+val)
		}
		return []string{strings.Join(parts, " "), "to keep it, add that line to " + sh.profile()}
	}
}

// profile is the file an interactive shell of this kind reads at start.
func (sh Shell) profile() string {
	switch {
	case sh.Name == "zsh":
		return "~/.zshrc"
	case sh.Name == "bash" && sh.OS == "darwin":
		return "~/.bash_profile" // Terminal opens login shells
	case sh.Name == "bash":
		return "~/.bashrc"
	default:
		return "~/.profile"
	}
}

// systemProxyNote says, where the OS has a system proxy setting, that
// kubectl does not use it.
func (sh Shell) systemProxyNote() string {
	switch sh.OS {
	case "windows":
		return "kubectl ignores the Windows system proxy (Internet Options / WinINET, netsh winhttp, PAC files): it reads only the HTTPS_PROXY and NO_PROXY environment variables"
	case "darwin":
		return "kubectl ignores the macOS system proxy (System Settings > Network > Proxies): it reads only the HTTPS_PROXY and NO_PROXY environment variables"
	}
	return ""
}

// safeValue reports whether s holds only the characters a proxy or NO_PROXY value usually holds;
// those are written in double quotes, anything else in single quotes.
func safeValue(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(".,:/_*@%+=-[]~", c):
		default:
			return false
		}
	}
	return true
}

// shQuote quotes for a POSIX shell (and fish).
func shQuote(s string) string {
	if safeValue(s) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// psQuote quotes for PowerShell (and setx from PowerShell).
func psQuote(s string) string {
	if safeValue(s) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// noProxyFix is the Fix that adds entry to the NO_PROXY value kubectl
// reads, written for the user's shell.
func noProxyFix(sh Shell, d *ProxyDecision, entry string) string {
	value := joinNoProxy(d.NoProxy, entry)
	head := fmt.Sprintf("add %q to NO_PROXY (kubectl reads NO_PROXY first, curl and Python no_proxy: set both the same):", entry)
	if sh.OS == "windows" {
		head = fmt.Sprintf("add %q to NO_PROXY (on Windows NO_PROXY and no_proxy are one variable):", entry)
	}
	lines := sh.setEnv(envVar{name: "NO_PROXY", value: value}, envVar{name: "no_proxy", value: value})
	return head + "\n" + strings.Join(lines, "\n")
}

// conflictFix makes the lower-case variable equal to the upper-case one
// kubectl reads.
func conflictFix(sh Shell, c CaseConflict) string {
	lines := sh.setEnv(envVar{name: c.Lower, copyOf: c.Upper})
	return fmt.Sprintf("make %s equal to %s, so that curl and Python go the way kubectl goes (or unset the one you do not mean):\n%s",
		c.Lower, c.Upper, strings.Join(lines, "\n"))
}

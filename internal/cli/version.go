package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Commit is set at link time (-X) where the build has no Git metadata to
// stamp, as in the image: its build context holds no .git.
var Commit string

func (c *cmd) version(args []string) int {
	pos, ok := c.flags("version", args, false, nil)
	if !ok || !c.noArgs("version", pos) {
		return ExitUsage
	}
	mod, rev, at, dirty := "(unknown)", "(unknown)", "", ""
	if Commit != "" {
		rev = Commit
	}
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		mod = bi.Main.Path + " " + bi.Main.Version
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = " (" + s.Value + ")"
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " with uncommitted changes"
				}
			}
		}
	}
	fmt.Fprintf(c.stdout, "module  %s\ncommit  %s%s%s\ngo      %s\n", mod, rev, at, dirty, goVersion)
	return ExitOK
}

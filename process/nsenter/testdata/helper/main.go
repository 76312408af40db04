// Command helper is the nsenter test subject: a program that links the
// nsenter constructor and reports, as one JSON object on stdout, where it
// ended up. Usage: helper [marker-path]
package main

import (
	"encoding/json"
	"os"

	_ "github.com/husk-runtime/husk/process/nsenter"
)

func main() {
	out := map[string]any{"uid": os.Getuid(), "gid": os.Getgid()}
	for _, ns := range []string{"mnt", "user"} {
		out[ns], _ = os.Readlink("/proc/self/ns/" + ns)
	}
	out["cwd"], _ = os.Getwd()
	_, out["envLeft"] = os.LookupEnv("_HUSK_NSENTER")
	if len(os.Args) > 1 {
		_, err := os.Stat(os.Args[1])
		out["marker"] = err == nil
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}

// Command validate renders each kustomization directory it is given (as
// `kubectl kustomize` does, with sigs.k8s.io/kustomize/api, no kubectl
// needed), decodes every object strictly against the Kubernetes API types
// (an unknown or misspelt field is an error naming the object and the
// field), and checks what mcpmesh's deployment relies on: probes on /readyz
// and /livez, non-root hardened containers, a volume claim for the bbolt
// file, selectors that match, an HPA and a PDB that point at something.
//
//	cd deploy/validate && go run . ../kubernetes [more kustomization dirs]
//
// It is its own module so that k8s.io/api stays out of mcpmesh's go.mod.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	external := fs.String("external-secrets", strings.Join(DefaultExternalSecrets, ","),
		"Secrets the operator creates outside the kustomization (comma-separated); a pod may name them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: validate [-external-secrets a,b] KUSTOMIZATION_DIR...")
		return 2
	}
	opts := Options{ExternalSecrets: splitList(*external)}
	failed := false
	for _, dir := range fs.Args() {
		objs, errs := Validate(filesys.MakeFsOnDisk(), dir, opts)
		if len(errs) > 0 {
			failed = true
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", dir, len(errs))
			for _, err := range errs {
				fmt.Fprintf(stderr, "  %v\n", err)
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: %d objects valid\n", dir, objs)
	}
	if failed {
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

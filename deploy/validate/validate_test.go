package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const base = "../kubernetes"

// baseWith is the shipped kustomization with old replaced by new in file
// (which must contain old), in a filesystem of its own.
func baseWith(t *testing.T, fSys filesys.FileSystem, dir, file, old, new string) {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := fSys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	replaced := false
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(base, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == file {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("%s does not contain %q: update the test", file, old)
			}
			b = bytes.Replace(b, []byte(old), []byte(new), 1)
			replaced = true
		}
		if err := fSys.WriteFile(filepath.Join(dir, e.Name()), b); err != nil {
			t.Fatal(err)
		}
	}
	if !replaced && file != "" {
		t.Fatalf("no file %s in %s", file, base)
	}
}

func TestShippedKustomizationIsValid(t *testing.T) {
	n, errs := Validate(filesys.MakeFsOnDisk(), base, Options{ExternalSecrets: DefaultExternalSecrets})
	for _, err := range errs {
		t.Error(err)
	}
	if n < 10 {
		t.Errorf("rendered %d objects, want the namespace, 2 workloads, 2 services, HPA, PDB, 3 network policies", n)
	}
}

// Each broken manifest is rejected with a message naming the object and
// the field.
func TestBrokenManifestsAreRejected(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new string
		want                 []string // all in one error
	}{
		{"unknown field", "dataplane.yaml", "livenessProbe:", "livenessProbes:",
			[]string{"Deployment mcpmesh/dataplane", `unknown field "spec.template.spec.containers[0].livenessProbes"`}},
		{"misspelt field in a StatefulSet", "controlplane.yaml", "volumeClaimTemplates:", "volumeClaimTemplate:",
			[]string{"StatefulSet mcpmesh/controlplane", `unknown field "spec.volumeClaimTemplate"`}},
		{"field of the wrong type", "dataplane.yaml", "replicas: 2", "replicas: two",
			[]string{"Deployment mcpmesh/dataplane", "replicas"}},
		{"liveness on the wrong path", "dataplane.yaml", "path: /livez", "path: /healthz",
			[]string{"Deployment mcpmesh/dataplane", "livenessProbe.httpGet.path", "/livez"}},
		{"readiness probe missing", "dataplane.yaml", "readinessProbe:", "startupProbe:",
			[]string{"Deployment mcpmesh/dataplane", "readinessProbe", "/readyz"}},
		{"probe on an undeclared port", "dataplane.yaml", "path: /readyz, port: mcp", "path: /readyz, port: web",
			[]string{"Deployment mcpmesh/dataplane", "readinessProbe.httpGet.port web"}},
		{"selector does not match", "dataplane.yaml", "  selector:\n    matchLabels: {app: mcpmesh-dataplane}\n  strategy", "  selector:\n    matchLabels: {app: other}\n  strategy",
			[]string{"Deployment mcpmesh/dataplane", "spec.selector app=other does not match"}},
		{"no claim for the bbolt file", "controlplane.yaml", "    - metadata:\n        name: data", "    - metadata:\n        name: store",
			[]string{"StatefulSet mcpmesh/controlplane", "volumeMounts[data]"}},
		{"HPA targets nothing", "dataplane.yaml", "    kind: Deployment\n    name: dataplane", "    kind: Deployment\n    name: data-plane",
			[]string{"HorizontalPodAutoscaler mcpmesh/dataplane", "spec.scaleTargetRef Deployment data-plane"}},
		{"HPA on CPU without requests", "dataplane.yaml", "requests: {cpu: 250m, memory: 64Mi}", "requests: {memory: 64Mi}",
			[]string{"HorizontalPodAutoscaler mcpmesh/dataplane", "resources.requests.cpu"}},
		{"PDB selects nothing", "dataplane.yaml", "minAvailable: 1\n  selector:\n    matchLabels: {app: mcpmesh-dataplane}", "minAvailable: 1\n  selector:\n    matchLabels: {app: gone}",
			[]string{"PodDisruptionBudget mcpmesh/dataplane", "spec.selector app=gone matches no"}},
		{"service selects nothing", "controlplane.yaml", "  selector: {app: mcpmesh-controlplane}\n  ports", "  selector: {app: nope}\n  ports",
			[]string{"Service mcpmesh/controlplane", "spec.selector"}},
		{"root allowed", "dataplane.yaml", "runAsNonRoot: true", "runAsNonRoot: false",
			[]string{"Deployment mcpmesh/dataplane", "runAsNonRoot: must be true"}},
		{"runs as root", "controlplane.yaml", "runAsUser: 65532", "runAsUser: 0",
			[]string{"StatefulSet mcpmesh/controlplane", "runAsUser: 0 is root"}},
		{"writable root", "controlplane.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
			[]string{"StatefulSet mcpmesh/controlplane", "readOnlyRootFilesystem: must be true"}},
		{"capabilities kept", "dataplane.yaml", `capabilities: {drop: ["ALL"]}`, `capabilities: {drop: ["NET_RAW"]}`,
			[]string{"Deployment mcpmesh/dataplane", "capabilities.drop: must contain ALL"}},
		{"grace shorter than the drain", "dataplane.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 20",
			[]string{"Deployment mcpmesh/dataplane", "terminationGracePeriodSeconds 20 is not over --shutdown-timeout 30s"}},
		{"unknown Secret", "dataplane.yaml", "secretName: mcpmesh-dataplane-token", "secretName: mcpmesh-dataplane-tokn",
			[]string{"Deployment mcpmesh/dataplane", `volumes[token].secret.secretName "mcpmesh-dataplane-tokn"`}},
		{"network policy selects nothing", "networkpolicy.yaml", "    matchLabels: {app: mcpmesh-dataplane}\n  policyTypes: [Ingress]\n", "    matchLabels: {app: mcpmesh-web}\n  policyTypes: [Ingress]\n",
			[]string{"NetworkPolicy mcpmesh/dataplane", "spec.podSelector app=mcpmesh-web"}},
		{"kind validate does not know", "namespace.yaml", "kind: Namespace\nmetadata:\n  name: mcpmesh", "kind: Namespace\nmetadata:\n  name: mcpmesh\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w",
			[]string{"Widget mcpmesh/w", "not one validate knows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fSys := filesys.MakeFsInMemory()
			baseWith(t, fSys, "/k", tc.file, tc.old, tc.new)
			_, errs := Validate(fSys, "/k", Options{ExternalSecrets: DefaultExternalSecrets})
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			for _, err := range errs {
				ok := true
				for _, w := range tc.want {
					ok = ok && strings.Contains(err.Error(), w)
				}
				if ok {
					return
				}
			}
			t.Fatalf("no error contains all of %q; got:\n%v", tc.want, errs)
		})
	}
}

// The command exits 0 on the shipped base and 1, naming the problem, on a
// broken copy on disk.
func TestCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{base}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d on the shipped base: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "objects valid") {
		t.Errorf("stdout = %q", out.String())
	}
	dir := t.TempDir()
	baseWith(t, filesys.MakeFsOnDisk(), dir, "dataplane.yaml", "path: /readyz", "path: /ready")
	out.Reset()
	errOut.Reset()
	if code := run([]string{dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d on a broken copy, want 1", code)
	}
	if !strings.Contains(errOut.String(), "readinessProbe.httpGet.path") {
		t.Errorf("stderr = %q, want it to name readinessProbe.httpGet.path", errOut.String())
	}
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("exit %d without arguments, want 2", code)
	}
}

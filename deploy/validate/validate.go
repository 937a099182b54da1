package main

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// DefaultExternalSecrets are the Secrets deploy/README.md tells the
// operator to create: their contents come from a running control plane
// (a dataplane token) or a CA, so the kustomization cannot hold them.
var DefaultExternalSecrets = []string{"mcpmesh-dataplane-token", "mcpmesh-grpc-tls"}

// Options tune Validate.
type Options struct {
	// ExternalSecrets may be named by pods without being in the output.
	ExternalSecrets []string
}

// The probe paths the data plane serves (dataplane/httpapi).
const (
	readyPath = "/readyz"
	livePath  = "/livez"
)

// workload is a Deployment or StatefulSet, reduced to what the checks read.
type workload struct {
	id       string
	kind     string
	name     string
	selector *metav1.LabelSelector
	pod      corev1.PodTemplateSpec
	claims   []corev1.PersistentVolumeClaim // StatefulSet volumeClaimTemplates
}

// rendered is the decoded output of one kustomization.
type rendered struct {
	workloads []workload
	services  []*corev1.Service
	hpas      []*autoscalingv2.HorizontalPodAutoscaler
	pdbs      []*policyv1.PodDisruptionBudget
	policies  []*networkingv1.NetworkPolicy
	secrets   map[string]bool // namespace/name
}

// Validate renders the kustomization in dir of fSys and checks it; it
// returns how many objects it rendered and every problem found, each
// naming the object (Kind namespace/name) and the field.
func Validate(fSys filesys.FileSystem, dir string, opts Options) (int, []error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fSys, dir)
	if err != nil {
		return 0, []error{fmt.Errorf("kustomize build %s: %w", dir, err)}
	}
	dec := decoder()
	var errs []error
	r := &rendered{secrets: map[string]bool{}}
	for _, res := range rm.Resources() {
		id := objectID(res.GetKind(), res.GetNamespace(), res.GetName())
		y, err := res.AsYAML()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		obj, _, err := dec.Decode(y, nil, nil)
		if err != nil {
			switch {
			case runtime.IsStrictDecodingError(err):
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
			case runtime.IsNotRegisteredError(err):
				errs = append(errs, fmt.Errorf("%s: kind %s is not one validate knows (%s); add its API group to decoder()", id, res.GetKind(), res.GetApiVersion()))
			default:
				errs = append(errs, fmt.Errorf("%s: decode: %w", id, err))
			}
			continue
		}
		r.add(id, obj)
	}
	errs = append(errs, r.check(opts)...)
	return len(rm.Resources()), errs
}

// decoder decodes YAML into the typed Kubernetes objects, strictly: an
// unknown or duplicate field fails.
func decoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err) // the API packages' own registrations
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}

func objectID(kind, ns, name string) string {
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

func (r *rendered) add(id string, obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r.workloads = append(r.workloads, workload{id: id, kind: "Deployment", name: o.Name, selector: o.Spec.Selector, pod: o.Spec.Template})
	case *appsv1.StatefulSet:
		r.workloads = append(r.workloads, workload{id: id, kind: "StatefulSet", name: o.Name, selector: o.Spec.Selector, pod: o.Spec.Template, claims: o.Spec.VolumeClaimTemplates})
	case *corev1.Service:
		r.services = append(r.services, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		r.hpas = append(r.hpas, o)
	case *policyv1.PodDisruptionBudget:
		r.pdbs = append(r.pdbs, o)
	case *networkingv1.NetworkPolicy:
		r.policies = append(r.policies, o)
	case *corev1.Secret:
		r.secrets[o.Namespace+"/"+o.Name] = true
	}
}

func (r *rendered) check(opts Options) []error {
	var errs []error
	fail := func(id, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{id}, args...)...))
	}
	var sawDataPlane, sawControlPlane bool
	for _, w := range r.workloads {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		switch {
		case w.selector == nil || len(w.selector.MatchLabels)+len(w.selector.MatchExpressions) == 0:
			fail(w.id, "spec.selector: empty; it would select every pod")
		case err != nil:
			fail(w.id, "spec.selector: %v", err)
		case !sel.Matches(labels.Set(w.pod.Labels)):
			fail(w.id, "spec.selector %s does not match spec.template.metadata.labels %v", sel, w.pod.Labels)
		}
		checkPod(w, opts, r.secrets, fail)
		for _, c := range w.pod.Spec.Containers {
			switch binary(c) {
			case "dataplane":
				sawDataPlane = true
				checkDataPlane(w, c, fail)
			case "controlplane":
				sawControlPlane = true
				checkControlPlane(w, c, fail)
			}
		}
	}
	if !sawDataPlane {
		errs = append(errs, errors.New("no workload runs the data plane (a container whose image or command is dataplane)"))
	}
	if !sawControlPlane {
		errs = append(errs, errors.New("no workload runs the control plane (a container whose image or command is controlplane)"))
	}
	for _, s := range r.services {
		id := objectID("Service", s.Namespace, s.Name)
		if len(s.Spec.Selector) == 0 {
			continue // a Service without selector has endpoints managed elsewhere
		}
		w := r.selects(s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
		if w == nil {
			fail(id, "spec.selector %v matches no Deployment or StatefulSet pod template", s.Spec.Selector)
			continue
		}
		for i, p := range s.Spec.Ports {
			if !hasPort(w.pod.Spec, p.TargetPort) {
				fail(id, "spec.ports[%d].targetPort %s: no container port of %s has it", i, p.TargetPort.String(), w.id)
			}
		}
	}
	for _, h := range r.hpas {
		id := objectID("HorizontalPodAutoscaler", h.Namespace, h.Name)
		ref := h.Spec.ScaleTargetRef
		var target *workload
		for i := range r.workloads {
			w := &r.workloads[i]
			if w.kind == ref.Kind && w.name == ref.Name && ref.APIVersion == "apps/v1" && namespaceOf(w.id) == h.Namespace {
				target = w
			}
		}
		if target == nil {
			fail(id, "spec.scaleTargetRef %s %s (%s): no such object in this output", ref.Kind, ref.Name, ref.APIVersion)
			continue
		}
		if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			fail(id, "spec.minReplicas %d is over spec.maxReplicas %d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		for i, m := range h.Spec.Metrics {
			if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Target.Type != autoscalingv2.UtilizationMetricType {
				continue
			}
			for _, c := range target.pod.Spec.Containers {
				if _, ok := c.Resources.Requests[m.Resource.Name]; !ok {
					fail(id, "spec.metrics[%d]: %s utilization needs resources.requests.%s on container %q of %s", i, m.Resource.Name, m.Resource.Name, c.Name, target.id)
				}
			}
		}
	}
	for _, p := range r.pdbs {
		id := objectID("PodDisruptionBudget", p.Namespace, p.Name)
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || p.Spec.Selector == nil || sel.Empty() {
			fail(id, "spec.selector: must select the pods it protects")
			continue
		}
		if r.selects(p.Namespace, sel) == nil {
			fail(id, "spec.selector %s matches no Deployment or StatefulSet pod template", sel)
		}
	}
	for _, np := range r.policies {
		id := objectID("NetworkPolicy", np.Namespace, np.Name)
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			fail(id, "spec.podSelector: %v", err)
			continue
		}
		if !sel.Empty() && r.selects(np.Namespace, sel) == nil {
			fail(id, "spec.podSelector %s matches no Deployment or StatefulSet pod template", sel)
		}
	}
	return errs
}

// selects returns the first workload in ns whose pod labels sel matches.
func (r *rendered) selects(ns string, sel labels.Selector) *workload {
	for i := range r.workloads {
		w := &r.workloads[i]
		if namespaceOf(w.id) == ns && sel.Matches(labels.Set(w.pod.Labels)) {
			return w
		}
	}
	return nil
}

func namespaceOf(id string) string {
	_, rest, _ := strings.Cut(id, " ")
	ns, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return ns
}

// binary names the mcpmesh program a container runs: the last element of
// its command, or of its image's repository (mcpmesh/dataplane:tag).
func binary(c corev1.Container) string {
	if len(c.Command) > 0 {
		return path.Base(c.Command[0])
	}
	repo := c.Image
	if i := strings.LastIndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return path.Base(repo)
}

// checkPod holds every container to the hardening mcpmesh ships with:
// non-root, no privilege escalation, a read-only root, no capabilities.
func checkPod(w workload, opts Options, secrets map[string]bool, fail func(id, format string, args ...any)) {
	spec := w.pod.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		f := fmt.Sprintf("spec.template.spec.containers[%s]", c.Name)
		if c.Image == "" {
			fail(w.id, "%s.image: empty", f)
		}
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			fail(w.id, "%s.securityContext.runAsNonRoot: must be true (here or in the pod's securityContext)", f)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			fail(w.id, "%s.securityContext.runAsUser: 0 is root", f)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail(w.id, "%s.securityContext.allowPrivilegeEscalation: must be false", f)
		}
		if sc.Privileged != nil && *sc.Privileged {
			fail(w.id, "%s.securityContext.privileged: must not be true", f)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail(w.id, "%s.securityContext.readOnlyRootFilesystem: must be true", f)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
			fail(w.id, "%s.securityContext.capabilities.drop: must contain ALL", f)
		} else if len(sc.Capabilities.Add) > 0 {
			fail(w.id, "%s.securityContext.capabilities.add: must be empty, has %v", f, sc.Capabilities.Add)
		}
		for _, m := range c.VolumeMounts {
			if !hasVolume(spec, w.claims, m.Name) {
				fail(w.id, "%s.volumeMounts[%s]: no volume or volumeClaimTemplate of that name", f, m.Name)
			}
		}
	}
	ns := namespaceOf(w.id)
	for _, v := range spec.Volumes {
		if v.Secret == nil {
			continue
		}
		name := v.Secret.SecretName
		if !secrets[ns+"/"+name] && !slices.Contains(opts.ExternalSecrets, name) {
			fail(w.id, "spec.template.spec.volumes[%s].secret.secretName %q: not in this output nor an operator-made Secret (%s)", v.Name, name, strings.Join(opts.ExternalSecrets, ", "))
		}
	}
}

// checkDataPlane: the kubelet must probe what the data plane serves.
func checkDataPlane(w workload, c corev1.Container, fail func(id, format string, args ...any)) {
	f := fmt.Sprintf("spec.template.spec.containers[%s]", c.Name)
	for _, p := range []struct {
		field, path string
		probe       *corev1.Probe
	}{{"readinessProbe", readyPath, c.ReadinessProbe}, {"livenessProbe", livePath, c.LivenessProbe}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			fail(w.id, "%s.%s: the data plane needs an httpGet probe on %s", f, p.field, p.path)
		case p.probe.HTTPGet.Path != p.path:
			fail(w.id, "%s.%s.httpGet.path: %q, want %s (what the data plane serves)", f, p.field, p.probe.HTTPGet.Path, p.path)
		case !hasPort(corev1.PodSpec{Containers: []corev1.Container{c}}, p.probe.HTTPGet.Port):
			fail(w.id, "%s.%s.httpGet.port %s: not a port of the container", f, p.field, p.probe.HTTPGet.Port.String())
		}
	}
	checkGrace(w, c, fail)
}

// checkGrace: the kubelet's SIGKILL must come after --shutdown-timeout, or
// it cuts the drain (and, for the control plane, the store's close).
func checkGrace(w workload, c corev1.Container, fail func(id, format string, args ...any)) {
	v := flagValue(c.Args, "--shutdown-timeout")
	if v == "" {
		return
	}
	f := fmt.Sprintf("spec.template.spec.containers[%s]", c.Name)
	d, err := time.ParseDuration(v)
	if err != nil {
		fail(w.id, "%s.args: --shutdown-timeout=%s: %v", f, v, err)
		return
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if time.Duration(grace)*time.Second <= d {
		fail(w.id, "spec.template.spec.terminationGracePeriodSeconds %d is not over --shutdown-timeout %s of container %q: the kubelet would kill it mid-drain", grace, d, c.Name)
	}
}

// checkControlPlane: its bbolt file must live on a claimed volume mounted
// at --data-dir, or a restart loses every registration.
func checkControlPlane(w workload, c corev1.Container, fail func(id, format string, args ...any)) {
	f := fmt.Sprintf("spec.template.spec.containers[%s]", c.Name)
	checkGrace(w, c, fail)
	if w.kind != "StatefulSet" {
		fail(w.id, "the control plane runs as a %s: use a StatefulSet with a volumeClaimTemplate for its bbolt file", w.kind)
		return
	}
	dataDir := flagValue(c.Args, "--data-dir")
	if dataDir == "" {
		fail(w.id, "%s.args: --data-dir is not set (the default ./data is not on a volume)", f)
		return
	}
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) != path.Clean(dataDir) {
			continue
		}
		for _, pvc := range w.claims {
			if pvc.Name == m.Name {
				if pvc.Spec.Resources.Requests.Storage().IsZero() {
					fail(w.id, "spec.volumeClaimTemplates[%s].spec.resources.requests.storage: must be set", pvc.Name)
				}
				return
			}
		}
		fail(w.id, "%s.volumeMounts[%s] at --data-dir %s: not a volumeClaimTemplate (a PersistentVolumeClaim), so the bbolt file would not survive the pod", f, m.Name, dataDir)
		return
	}
	fail(w.id, "%s: nothing is mounted at --data-dir %s: the bbolt file needs a PersistentVolumeClaim there", f, dataDir)
}

// flagValue returns the value of --name=value or --name value in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func hasVolume(spec corev1.PodSpec, claims []corev1.PersistentVolumeClaim, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	for _, c := range claims {
		if c.Name == name {
			return true
		}
	}
	return false
}

// hasPort reports whether a container of spec declares port (a name or a number).
func hasPort(spec corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if port.Type == intstr.String && p.Name == port.StrVal || port.Type == intstr.Int && p.ContainerPort == port.IntVal {
				return true
			}
		}
	}
	return false
}

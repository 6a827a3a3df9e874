package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest.
type object struct {
	file string
	kind string
	obj  any
}

// newObject returns an empty value of the API type for apiVersion and kind;
// the manifests may use only these.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows; add it to newObject", apiVersion, kind)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes one YAML document as the API server's strict field
// validation would: no unknown field, no duplicate, and field names
// matched case-sensitively (encoding/json, and so yaml.UnmarshalStrict,
// would take clusterIp for clusterIP).
func decodeStrict(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeAll decodes every document of every manifest strictly: a field
// the API type lacks (a typo, a wrong indentation) or a duplicate field
// fails.
func decodeAll(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			obj, err := newObject(tm.APIVersion, tm.Kind)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			if err := decodeStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i+1, tm.Kind, err)
				continue
			}
			out = append(out, object{file: f, kind: tm.Kind, obj: obj})
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// The strict decoding catches what it should: a misspelt field, a field at
// the wrong level, a duplicate.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIPs: None, selektor: {}}\n",
		"case":      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n",
		"misplaced": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1, containers: []}\n",
		"duplicate": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None, clusterIP: 10.0.0.1}\n",
	} {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeStrict([]byte(doc), obj); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// find returns the one object of type T named name.
func find[T any](t *testing.T, objs []object, name string) *T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.obj.(*T); ok {
			if any(v).(metav1.Object).GetName() == name {
				return v
			}
		}
	}
	var zero T
	t.Fatalf("no %T named %q in the manifests", zero, name)
	return nil
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// Every manifest decodes strictly, and the deployment keeps the promises
// docs/deploying.md makes: probes on /livez and /readyz, a grace period
// above the TTL, TLS from Secrets, disruption budgets that match their
// pods, a 3-member etcd with compaction.
func TestKubernetesManifests(t *testing.T) {
	objs := decodeAll(t)
	if t.Failed() {
		return
	}
	for _, o := range objs {
		if m, ok := o.obj.(metav1.Object); ok && o.kind != "Namespace" && m.GetNamespace() != "leasehold" {
			t.Errorf("%s: %s %q is in namespace %q; want leasehold", o.file, o.kind, m.GetName(), m.GetNamespace())
		}
	}

	dep := find[appsv1.Deployment](t, objs, "leasehold-scheduler")
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("scheduler pod has %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := envOf(c)
	ttl, err := time.ParseDuration(env["LEASEHOLD_TTL"])
	if err != nil {
		t.Fatalf("LEASEHOLD_TTL %q: %v", env["LEASEHOLD_TTL"], err)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < ttl+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s; want at least the TTL %s plus 10s", fmtSeconds(g), ttl)
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/livez", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("probe %+v; want an HTTPS httpGet of %s", probe, path)
		}
	}
	if env["LEASEHOLD_DEBUG_PUBLIC_HEALTH"] != "true" || env["LEASEHOLD_DEBUG_TOKEN_FILE"] == "" || env["LEASEHOLD_DEBUG_CERT"] == "" {
		t.Errorf("the debug endpoint needs a token file, a certificate and public health for the probes: %v", env)
	}
	if ep := env["LEASEHOLD_ENDPOINTS"]; strings.Count(ep, "https://") != 3 {
		t.Errorf("LEASEHOLD_ENDPOINTS %q; want the three etcd members over https", ep)
	}
	// Every file a variable names is on a mounted volume, and TLS
	// material comes from Secrets.
	mounts := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				mounts[m.MountPath] = v
			}
		}
	}
	for _, name := range []string{"LEASEHOLD_CACERT", "LEASEHOLD_CERT", "LEASEHOLD_KEY", "LEASEHOLD_DEBUG_CERT", "LEASEHOLD_DEBUG_KEY", "LEASEHOLD_DEBUG_TOKEN_FILE", "LEASEHOLD_TASKS"} {
		v, ok := mounts[filepath.Dir(env[name])]
		switch {
		case !ok:
			t.Errorf("%s=%s is on no mounted volume", name, env[name])
		case name != "LEASEHOLD_TASKS" && v.Secret == nil:
			t.Errorf("%s=%s is not on a Secret volume", name, env[name])
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("the scheduler must run as non-root, read-only, without privilege escalation")
	}
	checkPDB(t, find[policyv1.PodDisruptionBudget](t, objs, "leasehold-scheduler"), dep.Spec.Template.Labels)

	sts := find[appsv1.StatefulSet](t, objs, "etcd")
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("etcd replicas %v; want 3", sts.Spec.Replicas)
	}
	svc := find[corev1.Service](t, objs, sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("etcd's Service must be headless and publish not-ready members")
	}
	args := strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--client-cert-auth", "--peer-client-cert-auth", "--auto-compaction-retention=", "--initial-cluster=etcd-0=https://etcd-0.etcd:2380,etcd-1=https://etcd-1.etcd:2380,etcd-2=https://etcd-2.etcd:2380"} {
		if !strings.Contains(args, want) {
			t.Errorf("etcd args lack %q", want)
		}
	}
	checkPDB(t, find[policyv1.PodDisruptionBudget](t, objs, "etcd"), sts.Spec.Template.Labels)
}

func checkPDB(t *testing.T, pdb *policyv1.PodDisruptionBudget, podLabels map[string]string) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsMap(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("PodDisruptionBudget %s selects %s=%s, which its pods lack (%v)", pdb.Name, k, v, podLabels)
		}
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %s: maxUnavailable %v; want 1", pdb.Name, pdb.Spec.MaxUnavailable)
	}
}

func fmtSeconds(p *int64) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%ds", *p)
}

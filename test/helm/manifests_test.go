package helm

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty typed object for an apiVersion and kind the chart may render. Anything else
// is an error: a new kind needs its type added here, and with it the tests' strict decoding.
func newObject(apiVersion, kind string) (metav1.Object, error) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q %q", apiVersion, kind)
}

// release is one rendered chart, decoded.
type release struct {
	objects        []metav1.Object // in render order
	deployment     *appsv1.Deployment
	services       map[string]*corev1.Service
	configMaps     map[string]*corev1.ConfigMap
	secrets        map[string]*corev1.Secret
	serviceAccount *corev1.ServiceAccount
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	pdb            *policyv1.PodDisruptionBudget
	networkPolicy  *networkingv1.NetworkPolicy
	serviceMonitor *monitoringv1.ServiceMonitor
	pvcs           map[string]*corev1.PersistentVolumeClaim
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeRelease splits helm template output into documents and decodes each strictly (unknown fields and
// duplicate keys are errors) into its typed object.
func decodeRelease(manifests string) (*release, error) {
	r := &release{
		services:   map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
		pvcs:       map[string]*corev1.PersistentVolumeClaim{},
	}
	for i, doc := range docSeparator.Split(manifests, -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				return nil, fmt.Errorf("document %d has no apiVersion/kind:\n%s", i, doc)
			}
			continue
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s %s): strict decode: %w", i, tm.Kind, nameOf(doc), err)
		}
		if err := r.add(obj); err != nil {
			return nil, err
		}
	}
	if r.deployment == nil {
		return nil, fmt.Errorf("no Deployment rendered")
	}
	return r, nil
}

func (r *release) add(obj metav1.Object) error {
	r.objects = append(r.objects, obj)
	name := obj.GetName()
	dup := func(kind string) error { return fmt.Errorf("%s %q rendered twice", kind, name) }
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if r.deployment != nil {
			return fmt.Errorf("more than one Deployment")
		}
		r.deployment = o
	case *corev1.Service:
		if r.services[name] != nil {
			return dup("Service")
		}
		r.services[name] = o
	case *corev1.ConfigMap:
		if r.configMaps[name] != nil {
			return dup("ConfigMap")
		}
		r.configMaps[name] = o
	case *corev1.Secret:
		if r.secrets[name] != nil {
			return dup("Secret")
		}
		r.secrets[name] = o
	case *corev1.ServiceAccount:
		r.serviceAccount = o
	case *corev1.PersistentVolumeClaim:
		if r.pvcs[name] != nil {
			return dup("PersistentVolumeClaim")
		}
		r.pvcs[name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		r.hpa = o
	case *policyv1.PodDisruptionBudget:
		r.pdb = o
	case *networkingv1.NetworkPolicy:
		r.networkPolicy = o
	case *monitoringv1.ServiceMonitor:
		r.serviceMonitor = o
	}
	return nil
}

// container returns the pod's container with the given name.
func (r *release) container(t *testing.T, name string) *corev1.Container {
	t.Helper()
	for i := range r.deployment.Spec.Template.Spec.Containers {
		if c := &r.deployment.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q in the Deployment", name)
	return nil
}

// volume returns the pod volume with the given name, or nil.
func (r *release) volume(name string) *corev1.Volume {
	for i := range r.deployment.Spec.Template.Spec.Volumes {
		if v := &r.deployment.Spec.Template.Spec.Volumes[i]; v.Name == name {
			return v
		}
	}
	return nil
}

// flagValues returns every value of a "--flag value" pair in args.
func flagValues(args []string, flag string) []string {
	var vals []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			vals = append(vals, args[i+1])
		}
	}
	return vals
}

// flagValue returns the single value of flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	vals := flagValues(args, flag)
	if len(vals) != 1 {
		t.Fatalf("want exactly one %s in %q, got %q", flag, args, vals)
	}
	return vals[0]
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func nameOf(doc string) string {
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = yaml.Unmarshal([]byte(doc), &m)
	return m.Metadata.Name
}

func TestDecodeReleaseRejects(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n", "unknown field"},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b, a: c}\n", "already set"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "unknown kind"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n", "cannot unmarshal"},
		{"no kind", "metadata: {name: x}\n", "no apiVersion/kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeRelease(c.doc)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("decodeRelease error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

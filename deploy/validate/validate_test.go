// Package validate checks the Kubernetes manifests in deploy/k8s offline: each kustomization is
// built in process (kustomize's krusty, as `kustomize build` does), and every object it makes is
// decoded strictly into its k8s.io/api type, so a misspelt or misplaced field, or a value of the
// wrong type, fails the test. Then what the deployment promises is checked on the typed objects:
// probes on /healthz and /readyz, resources, a PodDisruptionBudget per workload, key material
// from Secrets, and a Padlock config whose memcached servers are the group's own pods.
package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const k8sDir = "../k8s"

var groups = []string{"padlock", "padlock-mirror"}

// The kinds the manifests may use, each with the type it must decode into.
var kinds = map[string]func() any{
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// decode decodes one object as the API server does, strictly: field names are case-sensitive
// (encoding/json alone would take "containerport" for containerPort), and unknown fields,
// duplicate fields and wrong types are errors.
func decode(doc []byte) (any, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	make, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return nil, fmt.Errorf("kind %s/%s is not one the manifests may use", head.APIVersion, head.Kind)
	}
	object := make()
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", head.Kind, err)
	}
	strict, err := sigsjson.UnmarshalStrict(data, object, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", head.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", head.Kind, errors.Join(strict...))
	}
	return object, nil
}

// build runs kustomize on dir and decodes every object it makes.
func build(t *testing.T, dir string) []any {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objects []any
	for _, resource := range resources.Resources() {
		doc, err := resource.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		object, err := decode(doc)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		objects = append(objects, object)
	}
	return objects
}

func of[T any](objects []any) []*T {
	var out []*T
	for _, object := range objects {
		if typed, ok := object.(*T); ok {
			out = append(out, typed)
		}
	}
	return out
}

func TestEveryKustomizationBuildsAndDecodesStrictly(t *testing.T) {
	for _, dir := range []string{"base", "overlays/padlock", "overlays/padlock-mirror"} {
		objects := build(t, filepath.Join(k8sDir, dir))
		if len(objects) < 6 {
			t.Errorf("%s: %d objects, want the 6 of a group at least", dir, len(objects))
		}
	}
}

// Every YAML file under deploy/k8s decodes strictly on its own too (a file kustomize does not
// list, or a patch, would otherwise go unchecked), except the kustomizations themselves.
func TestEveryManifestFileDecodesStrictly(t *testing.T) {
	count := 0
	err := filepath.WalkDir(k8sDir, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || !strings.HasSuffix(path, ".yaml") || entry.Name() == "kustomization.yaml" {
			return err
		}
		doc, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if _, err := decode(doc); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count < 6 {
		t.Fatalf("only %d manifest files found under %s", count, k8sDir)
	}
}

// The check above must fail on what it is there for: each case breaks one field of a real
// manifest, and decoding must say which.
func TestMisspeltOrMistypedFieldsFail(t *testing.T) {
	cases := []struct {
		file, from, to, want string
	}{
		{"padlock-deployment.yaml", "readinessProbe:", "readynessProbe:", `unknown field "spec.template.spec.containers[0].readynessProbe"`},
		{"padlock-deployment.yaml", "containerPort:", "containerport:", `unknown field "spec.template.spec.containers[0].ports[0].containerport"`},
		{"padlock-deployment.yaml", "secretName: padlock-kek", "secretname: padlock-kek", `unknown field "spec.template.spec.volumes[1].secret.secretname"`},
		{"padlock-deployment.yaml", "  replicas: 3", "  replicas: three", "cannot unmarshal string"},
		{"padlock-deployment.yaml", "      containers:", "      container:", `unknown field "spec.template.spec.container"`},
		{"padlock-pdb.yaml", "maxUnavailable: 1", "maxUnavailible: 1", `unknown field "spec.maxUnavailible"`},
		{"memcached-statefulset.yaml", "serviceName:", "servicename:", `unknown field "spec.servicename"`},
		{"memcached-service.yaml", "clusterIP: None", "clusterIp: None", `unknown field "spec.clusterIp"`},
	}
	for _, c := range cases {
		t.Run(c.to, func(t *testing.T) {
			good, err := os.ReadFile(filepath.Join(k8sDir, "base", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decode(good); err != nil {
				t.Fatalf("the unbroken %s fails already: %v", c.file, err)
			}
			if !strings.Contains(string(good), c.from) {
				t.Fatalf("%s has no %q to break", c.file, c.from)
			}
			_, err = decode([]byte(strings.Replace(string(good), c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("decoding %s with %q: %v, want an error with %s", c.file, c.to, err, c.want)
			}
		})
	}
}

// A misspelt field in a kustomization's own output (here a patch an overlay applies) fails the build test too.
func TestMisspeltFieldInAnOverlayPatchFails(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	entries, err := os.ReadDir(filepath.Join(k8sDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		content, err := os.ReadFile(filepath.Join(k8sDir, "base", entry.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/k8s/base/"+entry.Name(), content); err != nil {
			t.Fatal(err)
		}
	}
	overlay := `resources: [../base]
patches:
  - target: {kind: Deployment, name: padlock}
    patch: |
      - op: add
        path: /spec/template/spec/terminationGracePeriodSecond
        value: 40
`
	if err := fs.WriteFile("/k8s/broken/kustomization.yaml", []byte(overlay)); err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/k8s/broken")
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, resource := range resources.Resources() {
		doc, err := resource.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode(doc); err != nil {
			if !strings.Contains(err.Error(), `unknown field "spec.template.spec.terminationGracePeriodSecond"`) {
				t.Fatalf("unexpected error: %v", err)
			}
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d objects failed to decode, want the patched Deployment", failed)
	}
}

func httpProbe(t *testing.T, where string, probe *corev1.Probe, path string) {
	t.Helper()
	if probe == nil || probe.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe, want one on %s", where, path)
		return
	}
	if probe.HTTPGet.Path != path || probe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("%s: probe on %s %s, want HTTPS %s", where, probe.HTTPGet.Scheme, probe.HTTPGet.Path, path)
	}
}

func resources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := r.Requests[name]; !ok {
			t.Errorf("%s: no %s request", where, name)
		}
	}
	if limit, ok := r.Limits[corev1.ResourceMemory]; !ok || limit.Cmp(r.Requests[corev1.ResourceMemory]) < 0 {
		t.Errorf("%s: memory limit missing or below the request", where)
	}
}

func selects(selector map[string]string, labels map[string]string) bool {
	for key, value := range selector {
		if labels[key] != value {
			return false
		}
	}
	return len(selector) > 0
}

// paddedConfig is the part of Padlock's config the deployment has to agree with.
type paddedConfig struct {
	Listen struct {
		TLS struct {
			CertFile string `json:"certFile"`
			KeyFile  string `json:"keyFile"`
		} `json:"tls"`
	} `json:"listen"`
	Keks struct {
		Files []struct {
			Path string `json:"path"`
		} `json:"files"`
	} `json:"keks"`
	Cache struct {
		Memcached struct {
			Servers   []string `json:"servers"`
			KeyPrefix string   `json:"keyPrefix"`
		} `json:"memcached"`
	} `json:"cache"`
}

func TestEachGroupIsComplete(t *testing.T) {
	prefixes := map[string]string{}
	for _, group := range groups {
		t.Run(group, func(t *testing.T) {
			objects := build(t, filepath.Join(k8sDir, "overlays", group))
			deployments := of[appsv1.Deployment](objects)
			statefulSets := of[appsv1.StatefulSet](objects)
			budgets := of[policyv1.PodDisruptionBudget](objects)
			configMaps := of[corev1.ConfigMap](objects)
			if len(deployments) != 1 || deployments[0].Name != group {
				t.Fatalf("want one Deployment named %s", group)
			}
			if len(statefulSets) != 1 || len(configMaps) != 1 {
				t.Fatalf("want one memcached StatefulSet and one ConfigMap, got %d and %d", len(statefulSets), len(configMaps))
			}
			deployment, memcached := deployments[0], statefulSets[0]

			// Every pod of the group is in its own group's selectors and covered by a budget.
			for _, pod := range []struct {
				name     string
				labels   map[string]string
				selector map[string]string
			}{
				{deployment.Name, deployment.Spec.Template.Labels, deployment.Spec.Selector.MatchLabels},
				{memcached.Name, memcached.Spec.Template.Labels, memcached.Spec.Selector.MatchLabels},
			} {
				if pod.selector["padlock.dev/group"] != group {
					t.Errorf("%s: selector %v does not name the group", pod.name, pod.selector)
				}
				covered := 0
				for _, budget := range budgets {
					if selects(budget.Spec.Selector.MatchLabels, pod.labels) {
						covered++
					}
				}
				if covered != 1 {
					t.Errorf("%s: its pods are covered by %d PodDisruptionBudgets, want 1", pod.name, covered)
				}
			}

			pod := deployment.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("want one container in %s", group)
			}
			padlock := pod.Containers[0]
			httpProbe(t, group+" readiness", padlock.ReadinessProbe, "/readyz")
			httpProbe(t, group+" liveness", padlock.LivenessProbe, "/healthz")
			resources(t, group, padlock.Resources)
			resources(t, memcached.Name, memcached.Spec.Template.Spec.Containers[0].Resources)
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Errorf("%s: pods may run as root", group)
			}
			if c := padlock.SecurityContext; c == nil || c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem ||
				c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
				t.Errorf("%s: container not read-only or may escalate", group)
			}

			// The KEK and TLS material come from Secrets, and the config reads them where they are mounted.
			secrets := map[string]bool{}
			for _, volume := range pod.Volumes {
				if volume.Secret != nil {
					secrets[volume.Secret.SecretName] = true
				}
			}
			for _, name := range []string{"padlock-kek", "padlock-tls"} {
				if !secrets[name] {
					t.Errorf("%s: no volume from the Secret %s", group, name)
				}
			}
			mounts := []string{}
			for _, mount := range padlock.VolumeMounts {
				mounts = append(mounts, mount.MountPath+"/")
			}
			var config paddedConfig
			if err := json.Unmarshal([]byte(configMaps[0].Data["padlock.json"]), &config); err != nil {
				t.Fatalf("%s: padlock.json: %v", group, err)
			}
			files := []string{config.Listen.TLS.CertFile, config.Listen.TLS.KeyFile}
			for _, kek := range config.Keks.Files {
				files = append(files, kek.Path)
			}
			for _, file := range files {
				mounted := false
				for _, mount := range mounts {
					mounted = mounted || strings.HasPrefix(file, mount)
				}
				if file == "" || !mounted {
					t.Errorf("%s: config file %q is not under any mount %v", group, file, mounts)
				}
			}

			// cache.memcached.servers are this group's memcached pods, every one of them.
			want := []string{}
			for i := 0; i < int(*memcached.Spec.Replicas); i++ {
				want = append(want, fmt.Sprintf("%s-%d.%s:11211", memcached.Name, i, memcached.Spec.ServiceName))
			}
			got := append([]string{}, config.Cache.Memcached.Servers...)
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: memcached servers %v, want the group's pods %v", group, got, want)
			}
			prefixes[group] = config.Cache.Memcached.KeyPrefix
		})
	}
	if prefixes["padlock"] == prefixes["padlock-mirror"] {
		t.Errorf("the two groups share the memcached key prefix %q", prefixes["padlock"])
	}
}

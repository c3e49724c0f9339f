package main

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// The objects `fleetsim kubernetes` prints are built as the typed objects of k8s.io/api
// and serialized with sigs.k8s.io/yaml, so that their fields are the API's own.

const (
	scenarioDir = "/etc/fleetsim"               // where each pod finds the scenario file
	nonRootID   = 65532                         // distroless's and ko's "nonroot" user and group
	maxConfig   = 1 << 20                       // a ConfigMap holds at most 1 MiB
	reportStart = `{"schema":"fleetsim.report/` // how the collect step finds the report line
)

// kubeManifests is the multi-document YAML: the ConfigMap, the headless Service and the
// Indexed Job.
func kubeManifests(f *kubeFlags, s *scenario.Scenario, z shardSize) ([]byte, error) {
	if len(f.scenarioData) > maxConfig {
		return nil, usagef("kubernetes: the scenario file is %d bytes, more than a ConfigMap holds (1 MiB)", len(f.scenarioData))
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# fleetsim kubernetes: %s as %d shard(s) of up to %d home(s), %d device(s), %d connection(s) each, against %s.\n",
		s.Name, f.shards, z.homes, z.devices, z.connections, f.broker)
	fmt.Fprintf(&out, "# Each pod prints its report as the log line starting %s (README, \"Running on Kubernetes\").\n", reportStart)
	for i, obj := range []any{scenarioConfigMap(f), metricsService(f), shardJob(f, z)} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// objectMeta names an object and labels it as this run's.
func objectMeta(f *kubeFlags, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: f.namespace, Labels: runLabels(f)}
}

// runLabels select this run's objects and pods.
func runLabels(f *kubeFlags) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "fleetsim", "app.kubernetes.io/instance": f.name}
}

func configMapName(f *kubeFlags) string { return f.name + "-scenario" }

// scenarioConfigMap holds the scenario file as it is.
func scenarioConfigMap(f *kubeFlags) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(f, configMapName(f)),
	}
	if utf8.Valid(f.scenarioData) {
		cm.Data = map[string]string{f.scenarioKey: string(f.scenarioData)}
	} else {
		cm.BinaryData = map[string][]byte{f.scenarioKey: f.scenarioData}
	}
	return cm
}

// metricsService is a headless Service over the shards' metrics ports: Prometheus's
// endpoints discovery (or a ServiceMonitor) finds every shard through it.
func metricsService(f *kubeFlags) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(f, f.name),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  runLabels(f),
			Ports: []corev1.ServicePort{{Name: "metrics", Port: defaultMetricsPort,
				TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// shardJob is the Indexed Job: one pod per shard, each run once.
func shardJob(f *kubeFlags, z shardSize) *batchv1.Job {
	n := int32(f.shards)
	indexed := batchv1.IndexedCompletion
	// A shard is not tried again: a second run is another measurement, at another time,
	// and its report would be merged with shards that ran before it. backoffLimitPerIndex
	// (not backoffLimit) lets the other shards finish when one fails or crosses a threshold.
	once := int32(0)
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: objectMeta(f, f.name),
		Spec: batchv1.JobSpec{
			CompletionMode:       &indexed,
			Completions:          &n,
			Parallelism:          &n,
			BackoffLimitPerIndex: &once,
			Template:             shardPod(f, z),
		},
	}
}

// shardPod is the pod template of a shard.
func shardPod(f *kubeFlags, z shardSize) corev1.PodTemplateSpec {
	grace := f.grace
	if grace == 0 {
		grace = runner.DefaultGrace
	}
	// On SIGTERM (a drain, a deleted Job) fleetsim waits out its grace and writes its
	// report; the kubelet waits that long and a little more before it kills.
	termination := int64(grace.Seconds()) + 30
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: runLabels(f),
			Annotations: map[string]string{
				"prometheus.io/scrape": "true",
				"prometheus.io/port":   strconv.Itoa(defaultMetricsPort),
				"prometheus.io/path":   "/metrics",
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &termination,
			SecurityContext:               podSecurity(),
			Containers:                    []corev1.Container{shardContainer(f, z)},
			Volumes: []corev1.Volume{{Name: "scenario", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(f)}},
			}}},
		},
	}
}

// shardContainer runs fleetsim on one shard. The image's entrypoint is fleetsim (ko's is).
func shardContainer(f *kubeFlags, z shardSize) corev1.Container {
	mem := z.memoryRequest()
	limit := mem * memoryLimitFactor
	return corev1.Container{
		Name:  "fleetsim",
		Image: f.image,
		Args:  shardArgs(f),
		Env:   shardEnv(f, int64(float64(limit)*goMemLimitShare)),
		Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: defaultMetricsPort, Protocol: corev1.ProtocolTCP}},
		// No CPU limit: CFS throttling would stall the generator in 100 ms slices and show
		// up as its own lateness. The request reserves what the schedules need.
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(z.milliCPURequest(), resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(limit, resource.BinarySI)},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "scenario", MountPath: scenarioDir, ReadOnly: true}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptrTo(false),
			ReadOnlyRootFilesystem:   ptrTo(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// shardArgs are the arguments of each shard's `fleetsim run`. The shard comes from the
// environment (JOB_COMPLETION_INDEX, FLEETSIM_SHARDS); the report goes to stdout, last.
func shardArgs(f *kubeFlags) []string {
	args := []string{"run", path.Join(scenarioDir, f.scenarioKey), "--broker", f.broker,
		"--quiet", "--report", "-", "--metrics-addr", ":" + strconv.Itoa(defaultMetricsPort)}
	if f.startAt != "" {
		args = append(args, "--start-at", f.startAt)
	}
	if f.duration.set {
		args = append(args, "--duration", f.duration.v.String())
	}
	if f.day.set {
		args = append(args, "--day", f.day.v.String())
	}
	if f.seed.set {
		args = append(args, "--seed", strconv.FormatUint(f.seed.v, 10))
	}
	for _, t := range f.thresholds {
		args = append(args, "--threshold", t)
	}
	if f.allowGeneratorLimit {
		args = append(args, "--allow-generator-limit")
	}
	if f.grace > 0 {
		args = append(args, "--grace", f.grace.String())
	}
	return args
}

// shardEnv is each shard's environment: how many shards there are (Kubernetes sets
// JOB_COMPLETION_INDEX itself), GOMEMLIMIT, and the credentials from the Secret.
func shardEnv(f *kubeFlags, goMemLimit int64) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "FLEETSIM_SHARDS", Value: strconv.Itoa(f.shards)},
		{Name: "GOMEMLIMIT", Value: strconv.FormatInt(goMemLimit>>20, 10) + "MiB"},
	}
	if f.secret == "" {
		return env
	}
	ref := func(key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: f.secret}, Key: key, Optional: &optional}}
	}
	return append(env,
		corev1.EnvVar{Name: "FLEETSIM_USERNAME", ValueFrom: ref("username", true)},
		corev1.EnvVar{Name: "FLEETSIM_PASSWORD", ValueFrom: ref("password", false)})
}

// podSecurity runs the pod as distroless's non-root user, with the runtime's default
// seccomp profile.
func podSecurity() *corev1.PodSecurityContext {
	id := int64(nonRootID)
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptrTo(true),
		RunAsUser:      &id,
		RunAsGroup:     &id,
		FSGroup:        &id,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func ptrTo[T any](v T) *T { return &v }

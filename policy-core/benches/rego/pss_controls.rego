# The Pod Security Standards controls (policy version "latest", v1.37; see docs/pss-rules.md),
# one partial set of violations per control. `pss_baseline.rego` and `pss_restricted.rego`
# assemble the levels from them. Each violation names the nodeguard check id it mirrors.
package k8spss

import data.lib.k8s

spec := k8s.pod.spec

pod_sc := k8s.pod_security_context

# With its own user namespace (hostUsers: false) a pod is spared some controls.
host_users_off {
	spec.hostUsers == false
}

# Windows pods are exempt from the Linux-only restricted controls (privilege escalation,
# seccomp, capabilities).
windows_pod {
	spec.os.name == "windows"
}

# --- baseline ---------------------------------------------------------------------------

host_process[{"msg": msg, "details": {"rule": "pss.baseline.hostProcess"}}] {
	uses_host_process
	msg := "pod uses Windows hostProcess containers"
}

uses_host_process {
	pod_sc.windowsOptions.hostProcess == true
}

uses_host_process {
	k8s.containers[_].securityContext.windowsOptions.hostProcess == true
}

host_namespaces[{"msg": msg, "details": {"rule": "pss.baseline.hostNamespaces"}}] {
	field := ["hostNetwork", "hostPID", "hostIPC"][_]
	spec[field] == true
	msg := sprintf("pod shares a host namespace (%v=true)", [field])
}

privileged[{"msg": msg, "details": {"rule": "pss.baseline.privileged"}}] {
	c := k8s.containers[_]
	c.securityContext.privileged == true
	msg := sprintf("container <%v> is privileged", [c.name])
}

baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

capabilities_baseline[{"msg": msg, "details": {"rule": "pss.baseline.capabilities"}}] {
	c := k8s.containers[_]
	extra := {cap | cap := c.securityContext.capabilities.add[_]; not baseline_capabilities[cap]}
	count(extra) > 0
	msg := sprintf("container <%v> adds capabilities beyond the baseline set: %v", [c.name, extra])
}

host_path_volumes[{"msg": msg, "details": {"rule": "pss.baseline.hostPathVolumes"}}] {
	v := spec.volumes[_]
	v.hostPath
	msg := sprintf("pod uses the hostPath volume <%v>", [v.name])
}

host_ports[{"msg": msg, "details": {"rule": "pss.baseline.hostPorts"}}] {
	c := k8s.containers[_]
	port := c.ports[_].hostPort
	port != 0
	msg := sprintf("container <%v> uses host port %v", [c.name, port])
}

probe_fields := ["livenessProbe", "readinessProbe", "startupProbe"]

lifecycle_fields := ["postStart", "preStop"]

handler_kinds := ["httpGet", "tcpSocket"]

probe_hosts[{"msg": msg, "details": {"rule": "pss.baseline.probeHosts"}}] {
	c := k8s.containers[_]
	host := c[probe_fields[_]][handler_kinds[_]].host
	host != ""
	msg := sprintf("container <%v> probes the host %v", [c.name, host])
}

probe_hosts[{"msg": msg, "details": {"rule": "pss.baseline.probeHosts"}}] {
	c := k8s.containers[_]
	host := c.lifecycle[lifecycle_fields[_]][handler_kinds[_]].host
	host != ""
	msg := sprintf("container <%v> has a lifecycle handler targeting the host %v", [c.name, host])
}

confined_profile_types := {"RuntimeDefault", "Localhost"}

apparmor[{"msg": msg, "details": {"rule": "pss.baseline.appArmor"}}] {
	t := pod_sc.appArmorProfile.type
	not confined_profile_types[t]
	msg := sprintf("pod AppArmor profile is %v", [t])
}

apparmor[{"msg": msg, "details": {"rule": "pss.baseline.appArmor"}}] {
	c := k8s.containers[_]
	t := c.securityContext.appArmorProfile.type
	not confined_profile_types[t]
	msg := sprintf("container <%v> AppArmor profile is %v", [c.name, t])
}

apparmor[{"msg": msg, "details": {"rule": "pss.baseline.appArmor"}}] {
	value := k8s.pod.metadata.annotations[key]
	startswith(key, "container.apparmor.security.beta.kubernetes.io/")
	not apparmor_annotation_allowed(value)
	msg := sprintf("annotation %v=%v disables AppArmor", [key, value])
}

apparmor_annotation_allowed("")

apparmor_annotation_allowed("runtime/default")

apparmor_annotation_allowed(value) {
	startswith(value, "localhost/")
}

selinux_types := {"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

selinux_options[o] {
	o := pod_sc.seLinuxOptions
}

selinux_options[o] {
	o := k8s.containers[_].securityContext.seLinuxOptions
}

selinux[{"msg": msg, "details": {"rule": "pss.baseline.seLinux"}}] {
	t := selinux_options[_].type
	t != ""
	not selinux_types[t]
	msg := sprintf("SELinux type %v is not allowed", [t])
}

selinux[{"msg": msg, "details": {"rule": "pss.baseline.seLinux"}}] {
	field := ["user", "role"][_]
	selinux_options[_][field] != ""
	msg := sprintf("SELinux %v may not be set", [field])
}

unmasked_proc(c) {
	object.get(k8s.security_context(c), "procMount", "Default") != "Default"
}

proc_mount_baseline[{"msg": msg, "details": {"rule": "pss.baseline.procMount"}}] {
	not host_users_off
	c := k8s.containers[_]
	unmasked_proc(c)
	msg := sprintf("container <%v> uses procMount: Unmasked", [c.name])
}

seccomp_baseline[{"msg": msg, "details": {"rule": "pss.baseline.seccomp"}}] {
	t := declared_seccomp_types[_]
	not confined_profile_types[t]
	msg := sprintf("seccomp profile is %v", [t])
}

declared_seccomp_types[t] {
	t := pod_sc.seccompProfile.type
}

declared_seccomp_types[t] {
	t := k8s.containers[_].securityContext.seccompProfile.type
}

safe_sysctls := {
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_notsent_lowat",
}

sysctls[{"msg": msg, "details": {"rule": "pss.baseline.sysctls"}}] {
	name := pod_sc.sysctls[_].name
	not safe_sysctls[name]
	msg := sprintf("pod sets the unsafe sysctl %v", [name])
}

# --- restricted -------------------------------------------------------------------------

restricted_volume_types := {
	"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
	"persistentVolumeClaim", "projected", "secret",
}

volume_types[{"msg": msg, "details": {"rule": "pss.restricted.volumeTypes"}}] {
	v := spec.volumes[_]
	v[kind]
	kind != "name"
	not restricted_volume_types[kind]
	msg := sprintf("volume <%v> is of type %v, which the restricted level forbids", [v.name, kind])
}

privilege_escalation[{"msg": msg, "details": {"rule": "pss.restricted.privilegeEscalation"}}] {
	not windows_pod
	c := k8s.containers[_]
	not c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("container <%v> must set securityContext.allowPrivilegeEscalation=false", [c.name])
}

# Pod Security Admission judges the declared runAsNonRoot only; a user id of 0 is the
# runAsUser control's to report.
run_as_non_root[{"msg": msg, "details": {"rule": "pss.restricted.runAsNonRoot"}}] {
	not host_users_off
	c := k8s.containers[_]
	not declares_non_root(c)
	msg := sprintf("container <%v> must set runAsNonRoot=true", [c.name])
}

declares_non_root(c) {
	not declares_run_as_non_root(c, false)
	declares_run_as_non_root(c, true)
}

declares_run_as_non_root(c, value) {
	c.securityContext.runAsNonRoot == value
}

declares_run_as_non_root(_, value) {
	pod_sc.runAsNonRoot == value
}

run_as_user[{"msg": msg, "details": {"rule": "pss.restricted.runAsUser"}}] {
	not host_users_off
	pod_sc.runAsUser == 0
	msg := "pod-level runAsUser is 0 (root)"
}

run_as_user[{"msg": msg, "details": {"rule": "pss.restricted.runAsUser"}}] {
	not host_users_off
	c := k8s.containers[_]
	c.securityContext.runAsUser == 0
	msg := sprintf("container <%v> runAsUser is 0 (root)", [c.name])
}

seccomp_restricted[{"msg": msg, "details": {"rule": "pss.restricted.seccomp"}}] {
	not windows_pod
	t := declared_seccomp_types[_]
	not confined_profile_types[t]
	msg := sprintf("seccomp profile is %v; it must be RuntimeDefault or Localhost", [t])
}

seccomp_restricted[{"msg": msg, "details": {"rule": "pss.restricted.seccomp"}}] {
	not windows_pod
	c := k8s.containers[_]
	not c.securityContext.seccompProfile.type
	not pod_sc.seccompProfile.type
	msg := sprintf("container <%v> has no seccomp profile; it must be RuntimeDefault or Localhost", [c.name])
}

capabilities_restricted[{"msg": msg, "details": {"rule": "pss.restricted.capabilities"}}] {
	not windows_pod
	c := k8s.containers[_]
	not drops_all(c)
	msg := sprintf("container <%v> must drop ALL capabilities", [c.name])
}

capabilities_restricted[{"msg": msg, "details": {"rule": "pss.restricted.capabilities"}}] {
	not windows_pod
	c := k8s.containers[_]
	cap := c.securityContext.capabilities.add[_]
	cap != "NET_BIND_SERVICE"
	msg := sprintf("container <%v> adds %v; only NET_BIND_SERVICE may be added", [c.name, cap])
}

drops_all(c) {
	c.securityContext.capabilities.drop[_] == "ALL"
}

proc_mount_restricted[{"msg": msg, "details": {"rule": "pss.restricted.procMount"}}] {
	c := k8s.containers[_]
	unmasked_proc(c)
	msg := sprintf("container <%v> uses procMount: Unmasked", [c.name])
}

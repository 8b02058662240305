# The Pod Security Standards restricted level: the baseline controls it keeps, and its own
# (its capabilities, volume types, seccomp and procMount controls replace the baseline ones).
package k8spssrestricted

violation[v] {
	v := data.k8spss.host_process[_]
}

violation[v] {
	v := data.k8spss.host_namespaces[_]
}

violation[v] {
	v := data.k8spss.privileged[_]
}

violation[v] {
	v := data.k8spss.host_ports[_]
}

violation[v] {
	v := data.k8spss.probe_hosts[_]
}

violation[v] {
	v := data.k8spss.apparmor[_]
}

violation[v] {
	v := data.k8spss.selinux[_]
}

violation[v] {
	v := data.k8spss.sysctls[_]
}

violation[v] {
	v := data.k8spss.volume_types[_]
}

violation[v] {
	v := data.k8spss.privilege_escalation[_]
}

violation[v] {
	v := data.k8spss.run_as_non_root[_]
}

violation[v] {
	v := data.k8spss.run_as_user[_]
}

violation[v] {
	v := data.k8spss.seccomp_restricted[_]
}

violation[v] {
	v := data.k8spss.capabilities_restricted[_]
}

violation[v] {
	v := data.k8spss.proc_mount_restricted[_]
}

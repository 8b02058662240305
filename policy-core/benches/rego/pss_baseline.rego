# The Pod Security Standards baseline level: its twelve controls.
package k8spssbaseline

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
	v := data.k8spss.capabilities_baseline[_]
}

violation[v] {
	v := data.k8spss.host_path_volumes[_]
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
	v := data.k8spss.proc_mount_baseline[_]
}

violation[v] {
	v := data.k8spss.seccomp_baseline[_]
}

violation[v] {
	v := data.k8spss.sysctls[_]
}

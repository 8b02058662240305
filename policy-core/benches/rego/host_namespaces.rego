# hostNamespaces: the pod may not share the host's PID, IPC or network namespace.
package k8spsphostnamespace

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "hostNamespaces"}}] {
	field := ["hostPID", "hostIPC", "hostNetwork"][_]
	k8s.pod.spec[field] == true
	msg := sprintf("pod <%v> shares a host namespace (%v)", [k8s.pod.metadata.name, field])
}

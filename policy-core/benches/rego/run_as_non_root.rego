# runAsNonRoot: runAsNonRoot must be true (container or pod level, neither level false) and the
# user in force may not be UID 0.
package k8spsprunasnonroot

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "runAsNonRoot"}}] {
	c := k8s.containers[_]
	not non_root(c)
	msg := sprintf("container <%v> must run as non-root (runAsNonRoot: true, runAsUser not 0)", [c.name])
}

non_root(c) {
	not declares(c, false)
	declares(c, true)
	not runs_as_uid_0(c)
}

declares(c, value) {
	c.securityContext.runAsNonRoot == value
}

declares(_, value) {
	k8s.pod_security_context.runAsNonRoot == value
}

runs_as_uid_0(c) {
	c.securityContext.runAsUser == 0
}

runs_as_uid_0(c) {
	object.get(k8s.security_context(c), "runAsUser", null) == null
	k8s.pod_security_context.runAsUser == 0
}

# privileged: no container may run privileged.
package k8spspprivilegedcontainer

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "privileged"}}] {
	c := k8s.containers[_]
	c.securityContext.privileged == true
	msg := sprintf("container <%v> is privileged", [c.name])
}

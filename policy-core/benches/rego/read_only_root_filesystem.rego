# readOnlyRootFilesystem: every container must set readOnlyRootFilesystem: true.
package k8spspreadonlyrootfilesystem

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "readOnlyRootFilesystem"}}] {
	c := k8s.containers[_]
	not c.securityContext.readOnlyRootFilesystem == true
	msg := sprintf("container <%v> must set securityContext.readOnlyRootFilesystem to true", [c.name])
}

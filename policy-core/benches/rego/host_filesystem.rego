# hostPath: host paths may be used only under `parameters.allowedHostPaths` ({pathPrefix,
# readOnly}); under a read-only prefix, mounts must be read-only.
package k8spsphostfilesystem

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "hostPath"}}] {
	c := k8s.containers[_]
	m := c.volumeMounts[_]
	v := k8s.pod.spec.volumes[_]
	v.name == m.name
	path := v.hostPath.path
	not mount_allowed(path, m)
	msg := sprintf("container <%v> mounts host path %v at %v, which is not allowed", [c.name, path, m.mountPath])
}

violation[{"msg": msg, "details": {"rule": "hostPath"}}] {
	v := k8s.pod.spec.volumes[_]
	path := v.hostPath.path
	not mounted(v.name)
	not path_allowed(path)
	msg := sprintf("volume <%v> uses host path %v, which is not allowed", [v.name, path])
}

mounted(name) {
	k8s.containers[_].volumeMounts[_].name == name
}

path_allowed(path) {
	k8s.path_has_prefix(path, input.parameters.allowedHostPaths[_].pathPrefix)
}

mount_allowed(path, _) {
	a := input.parameters.allowedHostPaths[_]
	k8s.path_has_prefix(path, a.pathPrefix)
	not a.readOnly == true
}

mount_allowed(path, m) {
	a := input.parameters.allowedHostPaths[_]
	k8s.path_has_prefix(path, a.pathPrefix)
	a.readOnly == true
	m.readOnly == true
}

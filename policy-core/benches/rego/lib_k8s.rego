# Helpers shared by the benchmark's templates, as a Gatekeeper template's `libs` would hold them.
# The object under review is a Pod: `input.review.object`.
package lib.k8s

pod := input.review.object

# Every container of the pod: regular, init and ephemeral.
containers[c] {
	c := pod.spec.containers[_]
}

containers[c] {
	c := pod.spec.initContainers[_]
}

containers[c] {
	c := pod.spec.ephemeralContainers[_]
}

# The pod-level security context, {} when absent.
pod_security_context := object.get(pod.spec, "securityContext", {})

# A container's security context, {} when absent.
security_context(c) = sc {
	sc := object.get(c, "securityContext", {})
}

# Whether `path` is `prefix` or lies below it, comparing whole path components.
path_has_prefix(path, prefix) {
	path == trim_suffix(prefix, "/")
}

path_has_prefix(path, prefix) {
	startswith(path, concat("", [trim_suffix(prefix, "/"), "/"]))
}

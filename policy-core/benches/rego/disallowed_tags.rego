# images.tag: an image not pinned by digest may not use a tag of `parameters.tags`; an image
# with neither tag nor digest is `latest`.
package k8sdisallowedtags

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "images.tag"}}] {
	c := k8s.containers[_]
	not contains(c.image, "@")
	tag := image_tag(c.image)
	tag == input.parameters.tags[_]
	msg := sprintf("container <%v> uses image <%v> with the disallowed tag <%v>", [c.name, c.image, tag])
}

image_tag(image) = tag {
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

image_tag(image) = "latest" {
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}

//! ADR 0020: what "the image" is when the runtime knows its content by several names, and the
//! images a container mounts as volumes. Rules that allow images by name pass when any name of
//! the content passes; rules that deny by name refuse when any name is denied; tag and digest
//! rules judge the reference the container was given; every image volume is judged by name.

use policy_core::image::ImageRef;
use policy_core::view::ImageVolume;
use policy_core::{ContainerView, Policy};

use crate::util::{assert_clean, assert_denied, assert_undecided, messages, policy, rules, with};

/// A container given `image` whose content the runtime also knows as `others`.
fn named(image: &str, others: &[&str]) -> ContainerView {
    with(|v| {
        v.image = Some(ImageRef::parse(image));
        v.image_names = others.iter().map(|o| ImageRef::parse(o)).collect();
    })
}

/// A compliant container (image `registry.corp/app:1`) mounting `names` at `/data`.
fn mounting(names: Option<&[&str]>) -> ContainerView {
    with(|v| {
        v.image = Some(ImageRef::parse("registry.corp/app:1"));
        v.image_volumes = vec![ImageVolume {
            destination: "/data".into(),
            digest: format!("sha256:{}", "d".repeat(64)),
            names: names.map(|n| n.iter().map(|o| ImageRef::parse(o)).collect()),
        }];
    })
}

fn allow_corp() -> Policy {
    rules("images:\n  allowed: ['^registry\\.corp/']\n")
}

#[test]
fn a_mirror_of_an_allowed_image_is_allowed_whichever_name_the_runtime_gives() {
    // containerd 1.7 names the content by its first sorted name, not the pod's.
    assert_clean(
        &allow_corp(),
        &named("docker.io/library/nginx:1", &["registry.corp/nginx:1"]),
    );
    assert_clean(
        &allow_corp(),
        &named("registry.corp/nginx:1", &["docker.io/library/nginx:1"]),
    );
}

#[test]
fn content_no_allowed_name_points_to_is_refused() {
    assert_denied(
        &allow_corp(),
        &named("docker.io/evil/busybox:1", &["evil.example/busybox:1"]),
        "images.allowed",
        r#"image "docker.io/evil/busybox:1" does not match any allowed pattern (^registry\.corp/)"#,
    );
}

#[test]
fn a_denied_name_of_the_same_content_refuses_it() {
    let p = rules("images:\n  denied: ['^evil\\.example/']\n");
    assert_clean(&p, &named("registry.corp/app:1", &["registry.corp/app:2"]));
    assert_denied(
        &p,
        &named("registry.corp/app:1", &["evil.example/app:1"]),
        "images.denied",
        r#"image "registry.corp/app:1" (its content is also named "evil.example/app:1") matches denied pattern ^evil\.example/"#,
    );
}

#[test]
fn tag_and_digest_rules_judge_the_reference_given_not_the_other_names() {
    let p = rules("images: {forbiddenTags: [latest]}\n");
    assert_clean(
        &p,
        &named("registry.corp/app:1", &["registry.corp/app:latest"]),
    );
    let p = rules("images: {requireDigest: true}\n");
    assert_denied(
        &p,
        &named(
            "registry.corp/app:1",
            &[&format!("registry.corp/app@sha256:{}", "e".repeat(64))],
        ),
        "images.digest",
        r#"image "registry.corp/app:1" is not pinned by digest (@sha256:...)"#,
    );
}

#[test]
fn exemptions_by_image_hold_for_any_name_of_the_content() {
    let p = rules(
        "images:\n  allowed: ['^registry\\.corp/']\n  forbiddenTags: ['3']\n  exempt: ['^docker\\.io/vendor/agent:']\n",
    );
    assert_clean(
        &p,
        &named("evil.example/agent:3", &["docker.io/vendor/agent:3"]),
    );
}

#[test]
fn image_volumes_are_judged_by_every_name_of_their_content() {
    let p = allow_corp();
    assert_clean(
        &p,
        &mounting(Some(&["docker.io/x/data:1", "registry.corp/data:1"])),
    );
    assert_denied(
        &p,
        &mounting(Some(&["evil.example/busybox:1"])),
        "images.allowed",
        r#"image volume at /data: image "evil.example/busybox:1" does not match any allowed pattern (^registry\.corp/)"#,
    );
    // Content the runtime knows no name for is never shown allowed.
    let hex = "d".repeat(64);
    assert_denied(
        &p,
        &mounting(Some(&[])),
        "images.allowed",
        &format!(
            r#"image volume at /data: image "sha256:{hex}" does not match any allowed pattern (^registry\.corp/)"#
        ),
    );
    // Names not read (yet): undecided, so the start decides or refuses.
    assert_undecided(&p, &mounting(None), &[("images.allowed", "imageVolumes")]);
    let p = rules("images:\n  denied: ['^evil\\.example/']\n");
    assert_denied(
        &p,
        &mounting(Some(&["registry.corp/data:1", "evil.example/data:1"])),
        "images.denied",
        r#"image volume at /data: image "evil.example/data:1" matches denied pattern ^evil\.example/"#,
    );
}

fn constraint(kind: &str, parameters: &str) -> Policy {
    policy(&format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: c}}\nspec:\n  parameters:\n{}",
        crate::util::indent(parameters, 4)
    ))
}

#[test]
fn gatekeeper_repo_kinds_judge_every_name_and_image_volumes() {
    let allowed = constraint("K8sAllowedRepos", "repos: [registry.corp/]\n");
    assert!(
        messages(&policy_core::evaluate(
            &allowed,
            &named("docker.io/library/nginx:1", &["registry.corp/nginx:1"])
        ))
        .is_empty()
    );
    assert_eq!(
        messages(&policy_core::evaluate(
            &allowed,
            &mounting(Some(&["evil.example/busybox:1"]))
        )),
        [(
            "K8sAllowedRepos",
            r#"image volume </data> of container <app> has an invalid image repo <evil.example/busybox:1>, allowed repos are ["registry.corp/"]"#
        )]
    );
    let denied = constraint("K8sDisallowedRepos", "repos: [evil.example/]\n");
    assert_eq!(
        messages(&policy_core::evaluate(
            &denied,
            &named("registry.corp/app:1", &["evil.example/app:1"])
        )),
        [(
            "K8sDisallowedRepos",
            r#"container <app> has an invalid image repo <registry.corp/app:1>, disallowed repos are ["evil.example/"] (its content is also named "evil.example/app:1")"#
        )]
    );
    // exemptImages spares the container by any name of its content.
    let exempt = constraint(
        "K8sPSPPrivilegedContainer",
        "exemptImages: ['docker.io/vendor/*']\n",
    );
    let mut view = named("evil.example/agent:3", &["docker.io/vendor/agent:3"]);
    view.security.privileged = Some(true);
    assert!(messages(&policy_core::evaluate(&exempt, &view)).is_empty());
    view.image_names.clear();
    assert_eq!(messages(&policy_core::evaluate(&exempt, &view)).len(), 1);
}

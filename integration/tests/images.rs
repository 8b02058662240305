//! Image identity on a real containerd (ADR 0020), with images named as a 1.30+ kubelet names
//! them (by ID, the pod's string in `user_specified_image`): a mirror of an allowed image runs
//! whichever of its names the runtime reports, content no allowed name points to is refused,
//! and an image mounted as a volume (containerd 2.1+) is judged like the container's own.

use anyhow::{Context, Result, ensure};
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Nodeguard, PodSpec, images,
};

use crate::enforcement::{POLICY, refused_at_create, run};

const MIB: i64 = 1 << 20;

fn busybox(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec::new(name, image)
        .sleep_forever()
        .limits(250, 64 * MIB)
}

async fn setup(version: ContainerdVersion) -> Result<(Containerd, Nodeguard, CriClient)> {
    let containerd = Containerd::start(version).await?;
    let nodeguard = Nodeguard::start(&containerd, POLICY).await?;
    let cri = containerd.cri().await?;
    Ok((containerd, nodeguard, cri))
}

async fn judges_the_content_by_all_its_names(version: ContainerdVersion) -> Result<()> {
    let (_containerd, nodeguard, cri) = setup(version).await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;

    // The pod asks for the allowed mirror. containerd 1.7 reports the content's first sorted
    // name (the upstream's, which the policy does not allow); 2.x the pod's own string.
    run(&cri, &pod, &busybox("mirror", images::MIRRORED))
        .await
        .context("the allowed mirror")?;
    let records = nodeguard.audit_records();
    let start = records
        .iter()
        .find(|r| r["container"]["name"] == "mirror" && r["phase"] == "start")
        .context("no start record for the mirror")?;
    let reported = match version {
        ContainerdVersion::V1_7 => images::MIRRORED_UPSTREAM,
        ContainerdVersion::V2_1 => images::MIRRORED,
    };
    ensure!(
        start["image"] == reported && start["outcome"] == "allowed",
        "{start}"
    );
    // The upstream name of the same content: the node judges content, which an allowed name
    // points to (admission judges the string).
    run(&cri, &pod, &busybox("upstream", images::MIRRORED_UPSTREAM))
        .await
        .context("the same content by its upstream name")?;
    // Content that no allowed name points to is refused, by whatever name.
    refused_at_create(
        &cri,
        &pod,
        &busybox("evil", images::EVIL_BUSYBOX),
        &[r#"image "evil.example/busybox:1" does not match any allowed pattern (^registry\.local/)"#],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_judges_an_image_by_every_name_of_its_content() -> Result<()> {
    judges_the_content_by_all_its_names(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_judges_an_image_by_every_name_of_its_content() -> Result<()> {
    judges_the_content_by_all_its_names(ContainerdVersion::V2_1).await
}

/// Kubernetes image volumes: containerd 2.1 is the oldest that mounts them.
#[tokio::test]
async fn containerd_2_1_judges_the_images_a_container_mounts() -> Result<()> {
    let (_containerd, nodeguard, cri) = setup(ContainerdVersion::V2_1).await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    let message = refused_at_create(
        &cri,
        &pod,
        &busybox("reader", images::BUSYBOX).image_volume(images::EVIL_BUSYBOX, "/data"),
        &[
            r#"refused container "reader" in pod default/web"#,
            r#"image volume at /data: image "evil.example/busybox:1" does not match any allowed pattern (^registry\.local/)"#,
        ],
    )
    .await?;
    ensure!(
        !message.contains(r#"image "registry.local/busybox:1""#),
        "the container's own image is allowed: {message}"
    );
    // An allowed image's content mounted by its upstream name is the allowed content.
    let id = run(
        &cri,
        &pod,
        &busybox("mirror-reader", images::BUSYBOX).image_volume(images::MIRRORED_UPSTREAM, "/data"),
    )
    .await
    .context("an image volume of allowed content")?;
    // The volume is really the image's content.
    let out = cri
        .exec_sync(
            &id,
            &["/bin/ls", "/data/bin/busybox"],
            std::time::Duration::from_secs(10),
        )
        .await
        .context("exec in the container")?;
    ensure!(out.exit_code == 0, "no busybox under /data: {out:?}");
    let records = nodeguard.audit_records();
    ensure!(
        records.iter().any(|r| r["container"]["name"] == "reader"
            && r["phase"] == "create"
            && r["outcome"] == "refused"),
        "no refusal in the audit log: {records:?}"
    );
    Ok(())
}

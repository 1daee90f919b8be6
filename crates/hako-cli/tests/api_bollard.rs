//! bollard (the Rust Docker client) against `hako serve`: every endpoint hako answers is
//! called through bollard, whose typed models (bollard-stubs, generated from Docker's API
//! description) must read each answer. A field of the wrong JSON type, an enum value Docker
//! does not have, a missing required field or a wrong status code fails here; the values
//! read are checked too.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum,
    EndpointSettings, EventMessageTypeEnum, ExecConfig, HostConfig, ImageSummary,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, RestartPolicy,
    RestartPolicyNameEnum, Volume, VolumeCreateRequest,
};
use bollard::query_parameters as qp;
use bollard::{ClientVersion, Docker, body_full};
use bytes::Bytes;
use common::Hako;
use common::serve::Server;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

fn filters(pairs: &[(&str, &str)]) -> Option<HashMap<String, Vec<String>>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry((*k).to_string())
            .or_default()
            .push((*v).to_string());
    }
    Some(m)
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    tar::Archive::new(bytes)
        .entries()
        .expect("a tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

fn one_file_tar(name: &str, body: &[u8]) -> Bytes {
    let mut b = tar::Builder::new(Vec::new());
    let mut hdr = tar::Header::new_gnu();
    hdr.set_size(body.len() as u64);
    hdr.set_mode(0o644);
    hdr.set_uid(0);
    hdr.set_gid(0);
    hdr.set_mtime(0);
    hdr.set_cksum();
    b.append_data(&mut hdr, name, body).expect("tar entry");
    Bytes::from(b.into_inner().expect("tar"))
}

async fn output(
    mut s: impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Unpin,
) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(item) = s.next().await {
        match item.expect("a stream frame") {
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => {
                out.push_str(&String::from_utf8_lossy(&message));
            }
            bollard::container::LogOutput::StdErr { message } => {
                err.push_str(&String::from_utf8_lossy(&message));
            }
            bollard::container::LogOutput::StdIn { .. } => {}
        }
    }
    (out, err)
}

async fn wait_exit(d: &Docker, id: &str) -> i64 {
    let opts = qp::WaitContainerOptions {
        condition: "not-running".into(),
    };
    match d.wait_container(id, Some(opts)).next().await {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("wait {id}: {other:?}"),
    }
}

/// System, image, container, exec, volume, network and build endpoints.
async fn every_endpoint(h: &Hako, d: &Docker, reg: u16) {
    // System.
    assert_eq!(d.ping().await.expect("ping"), "OK");
    let v = d.version().await.expect("version");
    assert_eq!(v.api_version.as_deref(), Some(hako_api::API_VERSION));
    assert_eq!(v.min_api_version.as_deref(), Some("1.24"));
    assert_eq!(v.os.as_deref(), Some("linux"));
    assert!(v.components.is_some_and(|c| c[0].name == "Engine"));
    let info = d.info().await.expect("info");
    assert_eq!(info.images, Some(1), "{info:?}");
    assert_eq!(info.containers, Some(0));
    assert!(info.driver.is_some() && info.kernel_version.is_some());

    // Images.
    let list = d
        .list_images(None::<qp::ListImagesOptions>)
        .await
        .expect("image list");
    assert!(
        list.iter()
            .any(|i| i.repo_tags.iter().any(|t| t == "busybox:latest")),
        "{list:?}"
    );
    let img = d.inspect_image("busybox").await.expect("image inspect");
    assert!(img.id.as_deref().is_some_and(|i| i.starts_with("sha256:")));
    assert_eq!(img.config.and_then(|c| c.cmd), Some(vec!["sh".to_string()]));
    let hist = d.image_history("busybox").await.expect("history");
    assert!(!hist.is_empty());
    d.tag_image(
        "busybox",
        Some(qp::TagImageOptions {
            repo: Some("bb".into()),
            tag: Some("t1".into()),
        }),
    )
    .await
    .expect("tag");
    assert!(d.inspect_image("bb:t1").await.is_ok());
    let remote = format!("127.0.0.1:{reg}/bollard/busybox");
    d.tag_image(
        "busybox",
        Some(qp::TagImageOptions {
            repo: Some(remote.clone()),
            tag: Some("1".into()),
        }),
    )
    .await
    .expect("tag for the registry");
    let pushed: Vec<_> = d
        .push_image(&format!("{remote}:1"), None::<qp::PushImageOptions>, None)
        .try_collect()
        .await
        .expect("push");
    assert!(
        pushed.iter().any(|p| p
            .status
            .as_deref()
            .is_some_and(|s| s.contains("digest: sha256:"))),
        "{pushed:?}"
    );
    let removed = d
        .remove_image(&format!("{remote}:1"), None::<qp::RemoveImageOptions>, None)
        .await
        .expect("rmi");
    assert_eq!(
        removed[0].untagged.as_deref(),
        Some(format!("{remote}:1").as_str())
    );
    let pulled: Vec<_> = d
        .create_image(
            Some(qp::CreateImageOptions {
                from_image: Some(remote.clone()),
                tag: Some("1".into()),
                ..Default::default()
            }),
            None,
            None,
        )
        .try_collect()
        .await
        .expect("pull");
    assert!(
        pulled.iter().any(|p| p
            .status
            .as_deref()
            .is_some_and(|s| s.starts_with("Status: "))),
        "{pulled:?}"
    );
    // No tag: every tag the registry lists (Docker's API), one status naming the repository.
    let all: Vec<_> = d
        .create_image(
            Some(qp::CreateImageOptions {
                from_image: Some(remote.clone()),
                ..Default::default()
            }),
            None,
            None,
        )
        .try_collect()
        .await
        .expect("pull all tags");
    let statuses: Vec<&str> = all.iter().filter_map(|p| p.status.as_deref()).collect();
    assert!(
        statuses.contains(&format!("Status: Image is up to date for {remote}").as_str()),
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| s.starts_with("Digest: "))
            .count(),
        1,
        "the registry has one tag: {statuses:?}"
    );
    let rootfs = std::fs::read(common::rootfs_tar()).expect("rootfs tar");
    let imported: Vec<_> = d
        .create_image(
            Some(qp::CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some("imported".into()),
                tag: Some("1".into()),
                ..Default::default()
            }),
            Some(body_full(Bytes::from(rootfs))),
            None,
        )
        .try_collect()
        .await
        .expect("import");
    assert!(
        imported[0]
            .status
            .as_deref()
            .is_some_and(|s| s.starts_with("sha256:")),
        "{imported:?}"
    );
    let saved: Vec<Bytes> = d.export_image("bb:t1").try_collect().await.expect("save");
    let saved = saved.concat();
    assert!(tar_names(&saved).iter().any(|n| n == "manifest.json"));
    d.remove_image("bb:t1", None::<qp::RemoveImageOptions>, None)
        .await
        .expect("rmi bb:t1");
    let loaded: Vec<_> = d
        .import_image(
            qp::ImportImageOptions::default(),
            body_full(Bytes::from(saved)),
            None,
        )
        .try_collect()
        .await
        .expect("load");
    assert!(
        loaded
            .iter()
            .any(|l| l.stream.as_deref() == Some("Loaded image: bb:t1\n")),
        "{loaded:?}"
    );
    let many: Vec<Bytes> = d
        .export_images(&["bb:t1", "imported:1"])
        .try_collect()
        .await
        .expect("save two");
    assert!(tar_names(&many.concat()).iter().any(|n| n == "index.json"));

    // Containers.
    let labels = HashMap::from([("suite".to_string(), "bollard".to_string())]);
    let created = d
        .create_container(
            Some(qp::CreateContainerOptions {
                name: Some("b1".into()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some("busybox".into()),
                cmd: Some(
                    [
                        "sh",
                        "-c",
                        "trap 'exit 0' TERM; echo hi; echo err >&2; while :; do sleep 0.2; done",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    memory: Some(128 << 20),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(created.id.len(), 64);
    assert!(created.warnings.is_empty());
    d.start_container("b1", None::<qp::StartContainerOptions>)
        .await
        .expect("start");
    let list: Vec<ContainerSummary> = d
        .list_containers(Some(qp::ListContainersOptions {
            all: true,
            filters: filters(&[("label", "suite=bollard")]),
            ..Default::default()
        }))
        .await
        .expect("ps");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].state, Some(ContainerSummaryStateEnum::RUNNING));
    assert_eq!(list[0].names, Some(vec!["/b1".to_string()]));
    let c = d
        .inspect_container("b1", None::<qp::InspectContainerOptions>)
        .await
        .expect("inspect");
    let state = c.state.expect("State");
    assert_eq!(state.status, Some(ContainerStateStatusEnum::RUNNING));
    assert!(state.pid.is_some_and(|p| p > 0));
    assert_eq!(c.name.as_deref(), Some("/b1"));
    assert_eq!(c.host_config.and_then(|hc| hc.memory), Some(128 << 20));
    let top = d
        .top_processes("b1", None::<qp::TopOptions>)
        .await
        .expect("top");
    assert!(top.titles.is_some_and(|t| t.iter().any(|x| x == "PID")));
    h.wait_for("the container's output", || {
        h.run(&["logs", "b1"]).stdout.starts_with(b"hi")
    });
    let (out, err) = output(Box::pin(d.logs(
        "b1",
        Some(qp::LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    )))
    .await;
    assert_eq!((out.as_str(), err.as_str()), ("hi\n", "err\n"));
    let one: Vec<_> = d
        .stats(
            "b1",
            Some(qp::StatsOptions {
                stream: false,
                one_shot: true,
            }),
        )
        .try_collect()
        .await
        .expect("stats one-shot");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name.as_deref(), Some("/b1"));
    assert!(
        one[0]
            .memory_stats
            .as_ref()
            .and_then(|m| m.usage)
            .is_some_and(|u| u > 0),
        "{:?}",
        one[0]
    );
    let streamed: Vec<_> = d
        .stats(
            "b1",
            Some(qp::StatsOptions {
                stream: true,
                one_shot: false,
            }),
        )
        .take(2)
        .try_collect()
        .await
        .expect("stats stream");
    assert_eq!(streamed.len(), 2);

    // Exec: attached, detached, with a terminal and a resize.
    let ex = d
        .create_exec(
            "b1",
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(
                    ["sh", "-c", "echo out; echo e >&2; touch /made; exit 3"]
                        .map(String::from)
                        .to_vec(),
                ),
                ..Default::default()
            },
        )
        .await
        .expect("exec create");
    match d.start_exec(&ex.id, None).await.expect("exec start") {
        bollard::exec::StartExecResults::Attached { output: o, .. } => {
            assert_eq!(output(o).await, ("out\n".to_string(), "e\n".to_string()));
        }
        bollard::exec::StartExecResults::Detached => panic!("an attached exec detached"),
    }
    assert_eq!(exec_exit(d, &ex.id).await, 3);
    let det = d
        .create_exec(
            "b1",
            ExecConfig {
                cmd: Some(["touch", "/detached"].map(String::from).to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("exec create");
    let started = d
        .start_exec(
            &det.id,
            Some(bollard::exec::StartExecOptions {
                detach: true,
                ..Default::default()
            }),
        )
        .await
        .expect("detached start");
    assert!(matches!(started, bollard::exec::StartExecResults::Detached));
    assert_eq!(exec_exit(d, &det.id).await, 0);
    let tty = d
        .create_exec(
            "b1",
            ExecConfig {
                attach_stdout: Some(true),
                tty: Some(true),
                cmd: Some(
                    [
                        "sh",
                        "-c",
                        "while [ \"$(stty size)\" != '33 101' ]; do sleep 0.1; done; echo resized",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                ..Default::default()
            },
        )
        .await
        .expect("tty exec create");
    let bollard::exec::StartExecResults::Attached { output: o, .. } =
        d.start_exec(&tty.id, None).await.expect("tty exec start")
    else {
        panic!("a tty exec detached")
    };
    d.resize_exec(&tty.id, qp::ResizeExecOptions { h: 33, w: 101 })
        .await
        .expect("exec resize");
    let (out, _) = tokio::time::timeout(Duration::from_secs(30), output(o))
        .await
        .expect("the tty exec saw the resize");
    assert!(out.contains("resized"), "{out:?}");

    let changes = d
        .container_changes("b1")
        .await
        .expect("changes")
        .unwrap_or_default();
    assert!(
        changes
            .iter()
            .any(|c| c.path == "/made" && c.kind == bollard::models::ChangeType::_1),
        "{changes:?}"
    );

    // Archive: stat, download, upload (and a file may not replace a directory when asked).
    let stat = d
        .get_container_archive_info(
            "b1",
            Some(qp::ContainerArchiveInfoOptions {
                path: "/made".into(),
            }),
        )
        .await
        .expect("archive stat");
    assert_eq!((stat.name.as_str(), stat.size), ("made", 0));
    let got: Vec<Bytes> = d
        .download_from_container(
            "b1",
            Some(qp::DownloadFromContainerOptions {
                path: "/made".into(),
            }),
        )
        .try_collect()
        .await
        .expect("archive get");
    assert_eq!(tar_names(&got.concat()), ["made"]);
    d.upload_to_container(
        "b1",
        Some(qp::UploadToContainerOptions {
            path: "/tmp".into(),
            ..Default::default()
        }),
        body_full(one_file_tar("up.txt", b"uploaded")),
    )
    .await
    .expect("archive put");
    assert_eq!(h.ok(&["exec", "b1", "cat", "/tmp/up.txt"]), "uploaded");
    let dir_tar = || {
        let mut b = tar::Builder::new(Vec::new());
        let mut hdr = tar::Header::new_gnu();
        hdr.set_entry_type(tar::EntryType::Directory);
        hdr.set_size(0);
        hdr.set_mode(0o755);
        hdr.set_uid(0);
        hdr.set_gid(0);
        hdr.set_mtime(0);
        hdr.set_cksum();
        b.append_data(&mut hdr, "made/", &[][..])
            .expect("tar entry");
        body_full(Bytes::from(b.into_inner().expect("tar")))
    };
    let refused = d
        .upload_to_container(
            "b1",
            Some(qp::UploadToContainerOptions {
                path: "/".into(),
                no_overwrite_dir_non_dir: Some("1".into()),
                ..Default::default()
            }),
            dir_tar(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        h.run(&["exec", "b1", "test", "-f", "/made"])
            .status
            .success()
    );
    d.upload_to_container(
        "b1",
        Some(qp::UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        }),
        dir_tar(),
    )
    .await
    .expect("a directory replaces a file without noOverwriteDirNonDir");
    assert!(
        h.run(&["exec", "b1", "test", "-d", "/made"])
            .status
            .success()
    );

    // Update (the restart policy of a running container applies at once), rename, pause,
    // kill, restart, stop, wait.
    d.update_container(
        "b1",
        bollard::models::ContainerUpdateBody {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        },
    )
    .await
    .expect("update");
    let c = d
        .inspect_container("b1", None::<qp::InspectContainerOptions>)
        .await
        .expect("inspect");
    let hc = c.host_config.expect("HostConfig");
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(
        hc.restart_policy.and_then(|r| r.name),
        Some(RestartPolicyNameEnum::UNLESS_STOPPED)
    );
    d.rename_container("b1", qp::RenameContainerOptions { name: "b2".into() })
        .await
        .expect("rename");
    d.pause_container("b2").await.expect("pause");
    let s = d
        .inspect_container("b2", None::<qp::InspectContainerOptions>)
        .await
        .expect("inspect")
        .state
        .expect("State");
    assert_eq!(s.status, Some(ContainerStateStatusEnum::PAUSED));
    d.unpause_container("b2").await.expect("unpause");
    d.kill_container(
        "b2",
        Some(qp::KillContainerOptions {
            signal: "SIGWINCH".into(),
        }),
    )
    .await
    .expect("kill WINCH");
    d.restart_container(
        "b2",
        Some(qp::RestartContainerOptions {
            t: Some(10),
            ..Default::default()
        }),
    )
    .await
    .expect("restart");
    // The restarted shell has set its TERM trap once it printed "hi" again (a start
    // answers once the program runs, not once it has read its script: a stop right after
    // could reach a PID 1 with no handler yet, which ignores SIGTERM until the SIGKILL).
    h.wait_for("the restarted container's trap", || {
        h.ok(&["logs", "b2"]).matches("hi").count() >= 2
    });
    d.stop_container(
        "b2",
        Some(qp::StopContainerOptions {
            t: Some(10),
            signal: None,
        }),
    )
    .await
    .expect("stop");
    assert_eq!(wait_exit(d, "b2").await, 0);
    let exported: Vec<Bytes> = d
        .export_container("b2")
        .try_collect()
        .await
        .expect("export");
    assert!(
        tar_names(&exported.concat())
            .iter()
            .any(|n| n == "bin/busybox")
    );
    let committed = d
        .commit_container(
            qp::CommitContainerOptions {
                container: Some("b2".into()),
                repo: Some("committed".into()),
                tag: Some("1".into()),
                ..Default::default()
            },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .expect("commit");
    assert!(committed.id.starts_with("sha256:"));
    let dangling = d
        .commit_container(
            qp::CommitContainerOptions {
                container: Some("b2".into()),
                comment: Some("no name: dangling".into()),
                ..Default::default()
            },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .expect("commit without a name");

    // Attach (with the log replayed) and a tty resize.
    d.create_container(
        Some(qp::CreateContainerOptions {
            name: Some("cat".into()),
            ..Default::default()
        }),
        ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(
                ["sh", "-c", "echo first; exec cat"]
                    .map(String::from)
                    .to_vec(),
            ),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            labels: Some(labels.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("create cat");
    d.start_container("cat", None::<qp::StartContainerOptions>)
        .await
        .expect("start cat");
    h.wait_for("cat's first line", || {
        h.run(&["logs", "cat"]).stdout.starts_with(b"first")
    });
    let att = d
        .attach_container(
            "cat",
            Some(qp::AttachContainerOptions {
                stream: true,
                logs: true,
                stdin: true,
                stdout: true,
                stderr: true,
                detach_keys: None,
            }),
        )
        .await
        .expect("attach");
    let mut input = att.input;
    input.write_all(b"hello\n").await.expect("stdin");
    input.shutdown().await.expect("close stdin");
    let (out, _) = tokio::time::timeout(Duration::from_secs(30), output(att.output))
        .await
        .expect("the attach ended");
    assert_eq!(out, "first\nhello\n");
    assert_eq!(wait_exit(d, "cat").await, 0);

    d.create_container(
        Some(qp::CreateContainerOptions {
            name: Some("tty".into()),
            ..Default::default()
        }),
        ContainerCreateBody {
            image: Some("busybox".into()),
            tty: Some(true),
            cmd: Some(
                [
                    "sh",
                    "-c",
                    "while [ \"$(stty size)\" != '21 77' ]; do sleep 0.1; done",
                ]
                .map(String::from)
                .to_vec(),
            ),
            labels: Some(labels.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("create tty");
    d.start_container("tty", None::<qp::StartContainerOptions>)
        .await
        .expect("start tty");
    d.resize_container_tty("tty", qp::ResizeContainerTTYOptions { h: 21, w: 77 })
        .await
        .expect("resize");
    assert_eq!(wait_exit(d, "tty").await, 0);

    let pruned = d
        .prune_containers(Some(qp::PruneContainersOptions {
            filters: filters(&[("label", "suite=bollard")]),
        }))
        .await
        .expect("container prune");
    assert_eq!(
        pruned.containers_deleted.map(|v| v.len()),
        Some(3),
        "b2, cat and tty"
    );

    // Volumes.
    let vol = d
        .create_volume(VolumeCreateRequest {
            name: Some("bv1".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("volume create");
    assert_eq!(vol.name, "bv1");
    assert!(vol.mountpoint.ends_with("/bv1/_data"));
    let vols = d
        .list_volumes(None::<qp::ListVolumesOptions>)
        .await
        .expect("volume ls");
    assert!(
        vols.volumes
            .unwrap_or_default()
            .iter()
            .any(|v: &Volume| v.name == "bv1")
    );
    assert_eq!(
        d.inspect_volume("bv1")
            .await
            .expect("volume inspect")
            .labels,
        labels
    );
    d.remove_volume("bv1", None::<qp::RemoveVolumeOptions>)
        .await
        .expect("volume rm");
    d.create_volume(VolumeCreateRequest {
        name: Some("bv2".into()),
        ..Default::default()
    })
    .await
    .expect("volume create");
    let vp = d
        .prune_volumes(Some(qp::PruneVolumesOptions {
            filters: filters(&[("all", "true")]),
        }))
        .await
        .expect("volume prune");
    assert_eq!(vp.volumes_deleted, Some(vec!["bv2".to_string()]));

    // Networks.
    let net = d
        .create_network(NetworkCreateRequest {
            name: "bnet".into(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("network create");
    assert_eq!(net.id.len(), 64);
    let nets = d
        .list_networks(Some(qp::ListNetworksOptions {
            filters: filters(&[("label", "suite=bollard")]),
        }))
        .await
        .expect("network ls");
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0].name.as_deref(), Some("bnet"));
    let ni = d
        .inspect_network("bnet", None::<qp::InspectNetworkOptions>)
        .await
        .expect("network inspect");
    assert!(
        ni.ipam
            .and_then(|i| i.config)
            .is_some_and(|c| c.iter().any(|x| x.subnet.is_some()))
    );
    d.create_container(
        Some(qp::CreateContainerOptions {
            name: Some("n1".into()),
            ..Default::default()
        }),
        ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(["sleep", "1000"].map(String::from).to_vec()),
            ..Default::default()
        },
    )
    .await
    .expect("create n1");
    d.start_container("n1", None::<qp::StartContainerOptions>)
        .await
        .expect("start n1");
    d.connect_network(
        "bnet",
        NetworkConnectRequest {
            container: "n1".into(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec!["alias1".into()]),
                ..Default::default()
            }),
        },
    )
    .await
    .expect("network connect");
    let c = d
        .inspect_container("n1", None::<qp::InspectContainerOptions>)
        .await
        .expect("inspect n1");
    assert!(
        c.network_settings
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key("bnet"))
    );
    d.disconnect_network(
        "bnet",
        NetworkDisconnectRequest {
            container: "n1".into(),
            force: Some(false),
        },
    )
    .await
    .expect("network disconnect");
    d.remove_container(
        "n1",
        Some(qp::RemoveContainerOptions {
            force: true,
            ..Default::default()
        }),
    )
    .await
    .expect("rm -f n1");
    d.remove_network("bnet").await.expect("network rm");
    d.create_network(NetworkCreateRequest {
        name: "bnet2".into(),
        ..Default::default()
    })
    .await
    .expect("network create");
    let np = d
        .prune_networks(None::<qp::PruneNetworksOptions>)
        .await
        .expect("network prune");
    assert_eq!(np.networks_deleted, Some(vec!["bnet2".to_string()]));

    // Build (classic builder).
    let mut ctx = tar::Builder::new(Vec::new());
    let df = b"FROM busybox\nRUN echo built > /built\n";
    let mut hdr = tar::Header::new_gnu();
    hdr.set_size(df.len() as u64);
    hdr.set_mode(0o644);
    hdr.set_uid(0);
    hdr.set_gid(0);
    hdr.set_mtime(0);
    hdr.set_cksum();
    ctx.append_data(&mut hdr, "Dockerfile", &df[..])
        .expect("context");
    let built: Vec<_> = d
        .build_image(
            qp::BuildImageOptions {
                t: Some("built:1".into()),
                rm: true,
                ..Default::default()
            },
            None,
            Some(body_full(Bytes::from(ctx.into_inner().expect("tar")))),
        )
        .try_collect()
        .await
        .expect("build");
    assert!(built.iter().all(|b| b.error_detail.is_none()), "{built:?}");
    assert!(d.inspect_image("built:1").await.is_ok());

    // Image prune, then df and the event log.
    let ip = d
        .prune_images(None::<qp::PruneImagesOptions>)
        .await
        .expect("image prune");
    assert!(
        ip.images_deleted
            .unwrap_or_default()
            .iter()
            .any(|i| i.deleted.as_deref() == Some(dangling.id.as_str())),
        "{dangling:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let evs: Vec<_> = d
        .events(Some(qp::EventsOptions {
            since: Some("0".into()),
            until: Some(now.to_string()),
            filters: None,
        }))
        .try_collect()
        .await
        .expect("events");
    let seen = |t: EventMessageTypeEnum, a: &str| {
        evs.iter()
            .any(|e| e.typ == Some(t) && e.action.as_deref() == Some(a))
    };
    assert!(seen(EventMessageTypeEnum::CONTAINER, "create"), "{evs:?}");
    assert!(seen(EventMessageTypeEnum::CONTAINER, "rename"));
    assert!(seen(EventMessageTypeEnum::IMAGE, "tag"));
    assert!(seen(EventMessageTypeEnum::VOLUME, "create"));
    assert!(seen(EventMessageTypeEnum::NETWORK, "connect"));
}

/// `/system/df` in API 1.50's shape (bollard's model is 1.52's, where the lists moved
/// into `ImageUsage`...): its elements must read as bollard's summaries.
fn df_shape(s: &Server<'_>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Df {
        layers_size: i64,
        images: Vec<ImageSummary>,
        containers: Vec<ContainerSummary>,
        volumes: Vec<Volume>,
        build_cache: Vec<bollard::models::BuildCache>,
    }
    let (status, body) = s.http("GET", "/v1.50/system/df", "");
    assert_eq!(status, 200, "{body}");
    let df: Df = serde_json::from_str(&body).expect("df in bollard's types");
    assert!(df.layers_size > 0);
    assert!(
        df.images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == "busybox:latest"))
    );
    assert!(df.containers.is_empty(), "{body}");
    assert!(df.volumes.is_empty(), "{body}");
    // The classic build above may have left cache records: read as bollard's BuildCache.
    let _ = df.build_cache;
}

/// An exec's exit code, once it has one (read through exec inspect).
async fn exec_exit(d: &Docker, id: &str) -> i64 {
    for _ in 0..400 {
        let i = d.inspect_exec(id).await.expect("exec inspect");
        if i.running == Some(false) {
            return i.exit_code.expect("an exit code once not running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("exec {id} did not end");
}

#[test]
fn bollard_reads_every_endpoint() {
    need_root!();
    let h = Hako::new();
    let Some(reg) = h.net.run(hako_test_support::Registry::start) else {
        return;
    };
    let s = Server::start(&h);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let d = Docker::connect_with_unix(
            s.sock.to_str().expect("utf-8"),
            120,
            &ClientVersion {
                major_version: 1,
                minor_version: 53,
            },
        )
        .expect("client")
        .negotiate_version()
        .await
        .expect("version negotiation");
        assert_eq!(d.client_version().to_string(), hako_api::API_VERSION);
        every_endpoint(&h, &d, reg.port).await;
    });
    drop(rt);
    df_shape(&s);
    drop(s);
    drop(reg);
    h.finish(&[]);
}

//! scripts/install.sh staged into a temporary DESTDIR: the files it puts
//! down and their permissions, that a second run changes nothing, that an
//! operator's config is never overwritten, that systemd accepts the unit
//! (`systemd-analyze verify`), that --dry-run changes nothing, and that
//! --uninstall removes everything but the config.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn install(destdir: &Path, args: &[&str]) -> Output {
    let out = run_with_timeout(
        Command::new(root().join("scripts/install.sh"))
            .env("DESTDIR", destdir)
            .args(["--binary", env!("CARGO_BIN_EXE_patronus")])
            .args(args),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "install.sh {args:?}: {}\n{}\n{}", code(out.status), text(&out.stdout), text(&out.stderr));
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Every regular file under `dir` with its size and modification time.
fn tree(dir: &Path) -> Vec<(String, u64, i64, u32)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                v.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    m.size(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    m.mode(),
                ));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn install_stages_files_is_idempotent_keeps_config_and_uninstalls() {
    let s = Scratch::new("install");
    let d = s.path("dest");

    // --dry-run: says what it would do, creates nothing.
    let out = install(&d, &["--dry-run"]);
    assert!(text(&out.stdout).contains("would run: install"), "{}", text(&out.stdout));
    assert!(!d.exists() || tree(&d).is_empty(), "--dry-run created files: {:?}", tree(&d));

    let out = install(&d, &[]);
    let first = text(&out.stdout);
    let bin = d.join("usr/local/bin/patronus");
    let cfg = d.join("etc/patronus/patronus.toml");
    let unit = d.join("etc/systemd/system/patronus.service");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&cfg), 0o640, "the config may hold key paths: not world-readable");
    assert_eq!(mode(&d.join("etc/patronus")), 0o750);
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(env!("CARGO_BIN_EXE_patronus")).unwrap());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), std::fs::read_to_string(root().join("conf/appliance.toml")).unwrap());
    let sysctl = std::fs::read_to_string(d.join("etc/sysctl.d/80-patronus.conf")).unwrap();
    assert!(sysctl.contains("vm.nr_hugepages = 1024"), "{sysctl}");
    assert!(std::fs::read_to_string(d.join("etc/modules-load.d/patronus.conf")).unwrap().contains("vfio-pci"));
    for f in [
        "usr/local/share/patronus/prometheus/alerts.yml",
        "usr/local/share/patronus/grafana/dashboards/patronus-failover.json",
        "usr/local/share/doc/patronus/OPERATIONS.md",
    ] {
        assert_eq!(mode(&d.join(f)), 0o644, "{f}");
    }
    // The running system is left alone, and says so.
    assert!(first.contains("DESTDIR set, not run: systemctl enable patronus.service"), "{first}");
    assert!(first.contains("DESTDIR set, not run: sysctl -w vm.nr_hugepages=1024"), "{first}");
    // The config it installed validates.
    let out = run_with_timeout(patronus().args(["check", "--no-env", "--config"]).arg(&cfg), Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The unit: what DPDK needs, and systemd accepts it.
    let u = std::fs::read_to_string(&unit).unwrap();
    for want in [
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "CAP_IPC_LOCK",
        "CAP_SYS_RAWIO",
        "ExecReload=/usr/local/bin/patronus reload",
        "isolcpus",
        "WantedBy=multi-user.target",
    ] {
        assert!(u.contains(want), "unit lacks {want}:\n{u}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        // Verified as it will run, with the staged binary in place of /usr/local/bin.
        let staged = s.write("patronus.service", &u.replace("/usr/local/bin/patronus", &bin.display().to_string()));
        let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&staged).output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}\n{}", text(&out.stdout), text(&out.stderr));
    } else {
        skip("install: systemd-analyze verify", "systemd-analyze is not installed (package systemd)");
    }

    // Idempotent: a second run changes nothing, not even a timestamp.
    let before = tree(&d);
    let out = install(&d, &[]);
    assert!(text(&out.stdout).contains("nothing to do: already installed"), "{}", text(&out.stdout));
    assert_eq!(tree(&d), before);

    // An operator's config is never overwritten; the new template goes beside it.
    std::fs::write(&cfg, "# mine\n").unwrap();
    install(&d, &[]);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    assert!(d.join("etc/patronus/patronus.toml.dist").exists());

    // A changed unit (an upgrade) is replaced.
    std::fs::write(&unit, "[Unit]\n").unwrap();
    let out = install(&d, &[]);
    assert!(text(&out.stdout).contains("installing"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), u);

    // An upgrade keeps the binary it replaces, for a rollback.
    std::fs::write(&bin, "old build\n").unwrap();
    install(&d, &[]);
    assert_eq!(std::fs::read_to_string(d.join("usr/local/bin/patronus.prev")).unwrap(), "old build\n");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(env!("CARGO_BIN_EXE_patronus")).unwrap());
    assert_eq!(mode(&bin), 0o755);

    // Uninstall: everything but the config and keys goes.
    let out = install(&d, &["--uninstall"]);
    assert!(text(&out.stdout).contains("kept"), "{}", text(&out.stdout));
    for gone in
        [&bin, &d.join("usr/local/bin/patronus.prev"), &unit, &d.join("etc/sysctl.d/80-patronus.conf"), &d.join("usr/local/share/patronus")]
    {
        assert!(!gone.exists(), "{} survived --uninstall", gone.display());
    }
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    install(&d, &["--uninstall", "--purge"]);
    assert!(!d.join("etc/patronus").exists());
}

/// NIC binding against a fake sysfs and a fake dpdk-devbind.py that
/// records its calls and rebinds the fake device: the config's NIC on a
/// kernel driver is bound to vfio-pci and its driver remembered, one
/// already on vfio-pci is left alone, a second run binds nothing, and
/// --uninstall gives the NIC back to its kernel driver.
#[test]
fn nics_are_bound_to_vfio_and_given_back_on_uninstall() {
    let s = Scratch::new("install-nics");
    let d = s.path("dest");
    let sys = s.path("sys");
    let dev = |a: &str| sys.join("bus/pci/devices").join(a);
    for (addr, driver) in [("0000:01:00.0", "ixgbe"), ("0000:02:00.0", "vfio-pci")] {
        std::fs::create_dir_all(dev(addr)).unwrap();
        std::fs::create_dir_all(sys.join("bus/pci/drivers").join(driver)).unwrap();
        std::os::unix::fs::symlink(format!("../../drivers/{driver}"), dev(addr).join("driver")).unwrap();
    }
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = s.path("devbind.log");
    // Records its arguments; `--bind=DRV ADDR` repoints the device's driver link.
    let fake = s.write(
        "bin/dpdk-devbind.py",
        &format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nfor a; do case $a in --bind=*) drv=${{a#--bind=}};; 0000:*) ln -sfn ../../drivers/$drv {sys}/bus/pci/devices/$a/driver;; esac; done\n",
            log = log.display(),
            sys = sys.display()
        ),
    );
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str]| {
        let out = run_with_timeout(
            Command::new(root().join("scripts/install.sh"))
                .env("DESTDIR", &d)
                .env("PATRONUS_SYSFS", &sys)
                .env("PATH", &path)
                .args(["--binary", env!("CARGO_BIN_EXE_patronus")])
                .args(args),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    };
    let out = run(&[]);
    assert!(out.contains("binding 0000:01:00.0 to vfio-pci (was ixgbe)"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "--force --bind=vfio-pci 0000:01:00.0\n");
    let remembered = d.join("var/lib/patronus/nic-drivers");
    assert_eq!(std::fs::read_to_string(&remembered).unwrap(), "0000:01:00.0 ixgbe\n");
    assert_eq!(std::fs::read_link(dev("0000:01:00.0").join("driver")).unwrap().file_name().unwrap(), "vfio-pci");

    // Again: both are on vfio-pci now; nothing is bound, the record stays.
    let out = run(&[]);
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    assert_eq!(std::fs::read_to_string(&remembered).unwrap(), "0000:01:00.0 ixgbe\n");

    // Uninstall: back to ixgbe, and the record is gone.
    let out = run(&["--uninstall"]);
    assert!(out.contains("giving 0000:01:00.0 back to ixgbe"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().last(), Some("--bind=ixgbe 0000:01:00.0"));
    assert_eq!(std::fs::read_link(dev("0000:01:00.0").join("driver")).unwrap().file_name().unwrap(), "ixgbe");
    assert!(!remembered.exists());
}

//! A PostgreSQL cluster of the test's own (initdb into a temp dir, pg_ctl on a free port), for
//! tests that stop and start the database server, which the shared cluster must not see.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::util::free_port;

pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `postgres` when the tests run as root (postgres refuses to run as root).
    run_as: Option<&'static str>,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgCluster {
    /// The newest `/usr/lib/postgresql/*/bin` with initdb and pg_ctl, if any.
    pub fn binaries() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    fn cmd(&self, program: &Path) -> Command {
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// initdb, start, and a superuser role `anpi`.
    pub fn start() -> PgCluster {
        let bin = PgCluster::binaries().expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin (scripts/test.sh installs them)");
        let dir = tempfile::Builder::new().prefix("anpi-pgcluster-").tempdir().expect("temp dir");
        let run_as = is_root().then_some("postgres");
        if run_as.is_some() {
            let _ = Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status();
        }
        let cluster = PgCluster { bin, dir, port: free_port(), run_as };
        let out = cluster
            .cmd(&cluster.bin.join("initdb"))
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8", "--no-locale"])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        cluster.up();
        let out = cluster
            .cmd(&cluster.bin.join("psql"))
            .args(["-X", "-q", "-h"])
            .arg(cluster.dir.path())
            .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", "CREATE ROLE anpi LOGIN SUPERUSER"])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "create role: {}", String::from_utf8_lossy(&out.stderr));
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://anpi@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://anpi@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again), same port and data.
    pub fn up(&self) {
        let opts = format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=100", self.port, self.dir.path().display());
        let out = self
            .cmd(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (fast: open connections are cut, as in a crash of the database).
    pub fn down(&self) {
        let out =
            self.cmd(&self.bin.join("pg_ctl")).arg("-D").arg(self.data()).args(["-m", "fast", "-w", "-t", "60", "stop"]).output().expect("run pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.cmd(&self.bin.join("pg_ctl")).arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "30", "stop"]).output();
    }
}

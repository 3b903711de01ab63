//! Several `deltaglider serve` processes over one bucket, and the CLI beside them: uploads
//! racing into one new deltaspace (so racing to create its reference) through both servers
//! and the CLI all end stored, verified and byte-exact through every path, whatever the
//! interleaving. (The interleavings themselves are forced, one by one, by the library's
//! failpoint tests; this is the end-to-end check over real processes.)
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use cli_support::{Dg, support};
use serve_support::{Serve, client_bin};

#[test]
fn two_servers_and_the_cli_upload_into_one_deltaspace_at_once() {
    let Some(bin) = client_bin() else { return };
    for dg in Dg::all("serve-multi") {
        let servers = [Serve::start(&dg, &bin), Serve::start(&dg, &bin)];
        let base = support::noise(400_000, 51);
        let versions: Vec<Vec<u8>> = (0..9).map(|i| support::edited(&base, 60 + i)).collect();
        for (i, v) in versions.iter().enumerate() {
            std::fs::write(dg.work().join(format!("app-{i}.zip")), v).unwrap();
        }
        let url = |i: usize| format!("s3://{}/rel/app-{i}.zip", dg.bucket);
        std::thread::scope(|scope| {
            for (s, server) in servers.iter().enumerate() {
                let (dg, url) = (&dg, &url);
                scope.spawn(move || {
                    for i in (s * 4)..(s * 4 + 4) {
                        server.aws_ok(&["s3", "cp", &dg.path(&format!("app-{i}.zip")), &url(i)]);
                    }
                });
            }
            let (dg, url) = (&dg, &url);
            scope.spawn(move || dg.ok(&["cp", &dg.path("app-8.zip"), &url(8)]));
        });
        for (i, v) in versions.iter().enumerate() {
            dg.ok(&["verify", &url(i)]);
            // Each through the server that did not write it, and through the CLI.
            let back = format!("back-{i}.zip");
            servers[(i / 4 + 1) % 2].aws_ok(&["s3", "cp", &url(i), &dg.path(&back)]);
            assert!(
                std::fs::read(dg.work().join(&back)).unwrap() == *v,
                "[{}] {i}",
                dg.name()
            );
        }
        let ls = servers[0].aws_ok(&["s3", "ls", &format!("s3://{}/rel/", dg.bucket)]);
        assert_eq!(ls.lines().count(), 9, "[{}] {ls}", dg.name());
        for server in servers {
            assert!(server.stop().success());
        }
    }
}

//! `bgrun-deploy`: `bgrun deploy` in a binary of its own, so that libgit2 (and the OpenSSL and
//! libssh2 it links) are in no other process: the daemon's resident memory stays its own.

fn main() {
    std::process::exit(bgrun::cli::deploy_main());
}

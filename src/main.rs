fn main() {
    std::process::exit(bgrun::cli::main());
}

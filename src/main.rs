fn main() -> std::process::ExitCode {
    nightshift::install_crypto_provider();
    nightshift::cli::main()
}

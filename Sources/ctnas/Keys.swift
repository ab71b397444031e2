import Foundation
import Protocol
import Coordinator

/// `ctnas keygen DIR` and the key options of `search`, `coordinator` and `worker`.
enum Keys {
    static let spec = CommandSpec(name: "keygen", summary: "Write CurveZMQ key pairs for a coordinator and its workers (ctnas keygen DIR).",
        options: [
            .value("--dir", "DIR", nil, "where to write the keys (or give DIR as the first argument)"),
            .value("--workers", "N", nil, "write worker-1 ... worker-N key pairs instead of one worker pair, all authorized"),
            .flag("--force", "replace existing key files"),
        ])

    /// For `search` and `coordinator`.
    static let serverOptions: [OptionSpec] = [
        .value("--keys", "DIR", nil, "encrypt and authenticate with CurveZMQ: DIR/coordinator.key, DIR/authorized_workers (reloaded on SIGHUP)"),
        .flag("--insecure", "allow listening on a non-loopback address without --keys"),
    ]

    /// For `worker`.
    static let workerOptions: [OptionSpec] = [
        .value("--keys", "DIR", nil, "CurveZMQ keys: DIR/worker.key and DIR/coordinator.pub"),
        .value("--key", "FILE", nil, "this worker's secret key (instead of DIR/worker.key)"),
        .value("--server-key", "FILE", nil, "the coordinator's public key (instead of DIR/coordinator.pub)"),
    ]

    /// `ctnas keygen DIR [options]`: moves a leading DIR into `--dir DIR` for the option parser.
    /// Other commands' arguments are returned unchanged.
    static func normalize(_ spec: CommandSpec, _ arguments: [String]) -> [String] {
        guard [Keys.spec.name, Report.spec.name, Status.spec.name].contains(spec.name), let first = arguments.first, !first.hasPrefix("-") else { return arguments }
        return ["--dir", first] + arguments.dropFirst()
    }

    static func run(_ args: ParsedArguments) throws -> Int32 {
        guard let dir = args.string("--dir") else { throw UsageError(message: "usage: ctnas keygen DIR [--workers N] [--force]") }
        let workers = try args.int("--workers", in: 1...10_000)
        let written: [String]
        do {
            written = try CurveKeyFiles.generate(directory: dir, workers: workers, force: args.has("--force"))
        } catch let error as CurveKeyError {
            throw UsageError(message: error.message)
        }
        for path in written { print(path) }
        let names = workers.map { "worker-1 ... worker-\($0)" } ?? "worker"
        FileHandle.standardError.write(Data("""
            wrote CurveZMQ keys for the coordinator and \(names) to \(dir).
            coordinator: ctnas coordinator --listen tcp://0.0.0.0:5555 --keys \(dir)
            worker:      copy \(CurveKeyFiles.coordinatorPublic) and the worker's .key file (keep it mode 0600), then
                         ctnas worker --connect tcp://HOST:5555 --key WORKER.key --server-key \(CurveKeyFiles.coordinatorPublic)
                         (or --keys DIR with DIR/\(CurveKeyFiles.workerSecret) and DIR/\(CurveKeyFiles.coordinatorPublic))
            To admit or revoke a worker, edit \(CurveKeyFiles.authorizedWorkers) and send SIGHUP to the coordinator.

            """.utf8))
        return 0
    }

    /// The coordinator's CURVE settings from `--keys DIR` (nil without it). Warnings go to `warn`.
    static func serverSecurity(keys dir: String?, warn: (String) -> Void = Keys.printWarning) throws -> CurveSecurity? {
        guard let dir else { return nil }
        do {
            let security = try CurveSecurity.server(directory: dir)
            security.warnings.forEach { warn("warning: \($0)") }
            return security
        } catch let error as CurveKeyError {
            throw UsageError(message: "--keys \(dir): \(error.message)")
        }
    }

    /// Everything `search`/`coordinator` need before building the ClusterRunner: the server
    /// settings from `--keys` (nil without), the listen rule for `listen` (throws a UsageError, or
    /// prints the --insecure warning), and, when in-process workers reach a secured tcp endpoint
    /// (`search --listen ... --keys`), client settings for them with a key admitted only in memory.
    static func coordinatorSecurity(keys: String?, insecure: Bool, listen: String?, localWorkers: Int,
                                    warn: (String) -> Void = Keys.printWarning) throws -> (server: CurveSecurity?, local: CurveSecurity?) {
        let server = try serverSecurity(keys: keys, warn: warn)
        if let listen, let warning = try checkListenAddress(listen, secured: server != nil, insecure: insecure) {
            warn(warning)
        }
        guard let server else { return (nil, nil) }
        guard let listen, !listen.lowercased().hasPrefix("inproc://") else {
            warn("warning: --keys has no effect without a --listen tcp or ipc endpoint")
            return (server, nil)
        }
        guard localWorkers > 0 else { return (server, nil) }
        do {
            let pair = try server.admittingEphemeralClient()
            return (pair.server, pair.client)
        } catch let error as CurveKeyError {
            throw UsageError(message: error.message)
        }
    }

    static func printWarning(_ line: String) {
        FileHandle.standardError.write(Data("ctnas: \(line)\n".utf8))
    }

    /// A worker's CURVE settings from `--keys DIR` and/or `--key FILE --server-key FILE` (nil without
    /// any of them). Warnings go to `warn`.
    static func workerSecurity(_ args: ParsedArguments, warn: (String) -> Void = Keys.printWarning) throws -> CurveSecurity? {
        let dir = args.string("--keys")
        guard dir != nil || args.given("--key") || args.given("--server-key") else { return nil }
        func inDir(_ name: String, _ option: String) throws -> String {
            guard let dir else { throw UsageError(message: "option \(option) is required with --key/--server-key unless --keys DIR is given") }
            return (dir as NSString).appendingPathComponent(name)
        }
        let secret = try args.string("--key") ?? inDir(CurveKeyFiles.workerSecret, "--key")
        let server = try args.string("--server-key") ?? inDir(CurveKeyFiles.coordinatorPublic, "--server-key")
        do {
            let security = try CurveSecurity.client(secretKeyFile: secret, serverPublicKeyFile: server)
            security.warnings.forEach { warn("warning: \($0)") }
            return security
        } catch let error as CurveKeyError {
            throw UsageError(message: error.message)
        }
    }

    /// A warning when a worker talks to a non-local coordinator in clear text, else nil.
    static func connectWarning(_ endpoint: String, secured: Bool) -> String? {
        guard !secured, !ListenPolicy.isLocal(endpoint) else { return nil }
        return "warning: connecting to \(endpoint) without --keys: traffic is neither encrypted nor authenticated"
    }

    /// Re-reads the allow-list when the process gets SIGHUP, so workers can be admitted or revoked
    /// without a restart (connections already admitted stay). Keep the returned source alive.
    static func reloadOnHangup(_ runner: ClusterRunner, security: CurveSecurity?,
                               log: @escaping @Sendable (String) -> Void = { Keys.printWarning($0) }) -> DispatchSourceSignal? {
        guard runner.isSecured, let file = security?.authorizedKeysFile else { return nil }
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            do {
                let keys = try CurveSecurity.loadAuthorizedKeys(file: file)
                try runner.reloadAuthorizedKeys(keys)
                log("reloaded \(file): \(keys.count) authorized worker key(s)")
            } catch {
                log("warning: kept the previous authorized keys; cannot reload \(file): \(error)")
            }
        }
        source.resume()
        return source
    }
}

/// Where a coordinator may listen: without keys only on this host (tcp://127.0.0.1:…,
/// tcp://localhost:…, tcp://[::1]:…, inproc://, ipc://). Any other address needs `--keys`, or
/// `--insecure`, which returns a warning to print. Throws a UsageError otherwise.
func checkListenAddress(_ endpoint: String, secured: Bool, insecure: Bool) throws -> String? {
    do {
        return try ListenPolicy.check(endpoint, secured: secured, insecure: insecure)
    } catch let error as ListenAddressError {
        throw UsageError(message: error.message)
    }
}

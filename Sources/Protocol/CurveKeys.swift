// CurveZMQ key files, the security settings built from them, and the rule for where an
// unsecured coordinator may listen.
//
// Key files hold one Z85 key (40 characters) and a newline. A keys directory, as written by
// `ctnas keygen DIR` (`CurveKeyFiles.generate`):
//
//   coordinator.key      coordinator secret key (mode 0600)
//   coordinator.pub      coordinator public key (workers need it)
//   worker.key           worker secret key (mode 0600)       or worker-1.key ... worker-N.key
//   worker.pub           worker public key                   or worker-1.pub ... worker-N.pub
//   authorized_workers   public keys of the workers the coordinator admits, one per line;
//                        blank lines and lines starting with '#' are ignored, and a key may be
//                        followed by a '#' comment on its line.
//
// The coordinator reads coordinator.key and authorized_workers; a worker reads worker.key (or any
// secret key file) and coordinator.pub. Only the coordinator's public key and the workers' public
// keys ever need to be copied between machines.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A key file that is missing, unreadable or malformed, or keys that would be overwritten.
public struct CurveKeyError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Key pair

public struct CurveKeyPair: Sendable, Equatable {
    /// Z85, 40 characters.
    public let publicKey: String
    /// Z85, 40 characters.
    public let secretKey: String

    /// Checks both keys and that the public key belongs to the secret key.
    public init(publicKey: String, secretKey: String) throws {
        try CurveKeyPair.validate(publicKey, what: "public key")
        try CurveKeyPair.validate(secretKey, what: "secret key")
        guard try ZMQCurve.publicKey(forSecretKey: secretKey) == publicKey else {
            throw CurveKeyError("the public key does not belong to the secret key")
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The pair of a secret key, its public key derived with `zmq_curve_public`.
    public init(secretKey: String) throws {
        try CurveKeyPair.validate(secretKey, what: "secret key")
        self.secretKey = secretKey
        self.publicKey = try ZMQCurve.publicKey(forSecretKey: secretKey)
    }

    /// A fresh random key pair.
    public static func generate() throws -> CurveKeyPair {
        guard ZMQCurve.isAvailable else { throw CurveKeyError("this libzmq was built without CURVE support") }
        let (pub, sec) = try ZMQCurve.keyPair()
        return try CurveKeyPair(publicKey: pub, secretKey: sec)
    }

    /// Reads a secret key file and derives the public key. See `permissionWarning(secretKeyFile:)`
    /// for the check of who may read the file.
    public static func load(secretKeyFile path: String) throws -> CurveKeyPair {
        try CurveKeyPair(secretKey: readKeyFile(path, what: "secret key"))
    }

    /// Reads a public key file.
    public static func loadPublicKey(file path: String) throws -> String {
        try readKeyFile(path, what: "public key")
    }

    /// A warning if a secret key file may be read or written by group or others, else nil.
    public static func permissionWarning(secretKeyFile path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let mode = st.st_mode & 0o777
        guard mode & 0o077 != 0 else { return nil }
        return "secret key \(path) is accessible to other users (mode \(String(mode, radix: 8))); run: chmod 600 \(path)"
    }

    /// The Z85 alphabet (ZeroMQ RFC 32).
    static let z85Alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)

    /// True if `key` is a canonical 40-character Z85 encoding of 32 bytes.
    public static func isValidKey(_ key: String) -> Bool {
        (try? validate(key, what: "key")) != nil
    }

    /// Throws a message naming `what` unless `key` is a canonical 40-character Z85 key.
    public static func validate(_ key: String, what: String) throws {
        let bytes = Array(key.utf8)
        guard bytes.count == 40 else {
            throw CurveKeyError("malformed \(what): expected 40 Z85 characters, got \(bytes.count)")
        }
        if let bad = bytes.first(where: { !z85Alphabet.contains($0) }) {
            let shown = bad >= 0x20 && bad < 0x7F ? "'\(Character(UnicodeScalar(bad)))'" : "byte 0x\(String(bad, radix: 16))"
            throw CurveKeyError("malformed \(what): \(shown) is not a Z85 character")
        }
        // Every 5-character group must encode a value below 2^32, so the key round-trips.
        guard let raw = try? ZMQCurve.z85Decode(key), raw.count == 32, (try? ZMQCurve.z85Encode(raw)) == key else {
            throw CurveKeyError("malformed \(what): not a valid Z85 encoding of 32 bytes")
        }
    }

    /// The one key in a key file: a single 40-character Z85 line (surrounding blanks ignored).
    static func readKeyFile(_ path: String, what: String) throws -> String {
        let text = try readText(path, what: what)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count == 1 else {
            throw CurveKeyError("malformed \(what) file \(path): expected one Z85 key on one line, found \(lines.count) non-empty lines")
        }
        do {
            try validate(lines[0], what: what)
        } catch let error as CurveKeyError {
            throw CurveKeyError("\(path): \(error.message)")
        }
        return lines[0]
    }

    static func readText(_ path: String, what: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CurveKeyError("\(what) file \(path) does not exist")
        }
        guard !isDirectory.boolValue else { throw CurveKeyError("\(what) file \(path) is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CurveKeyError("cannot read \(what) file \(path): \(String(cString: strerror(errno)))")
        }
        guard data.count <= 1 << 20, let text = String(data: data, encoding: .utf8) else {
            throw CurveKeyError("\(what) file \(path) is not a text file")
        }
        return text
    }
}

// MARK: - Security settings

/// What a socket needs to speak CURVE: its own key pair plus, for the coordinator, the public
/// keys it admits, and for a worker, the coordinator's public key.
public struct CurveSecurity: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case server(keyPair: CurveKeyPair, authorizedKeys: Set<String>)
        case client(keyPair: CurveKeyPair, serverPublicKey: String)
    }

    /// The ZAP domain the coordinator's ROUTER announces to the authenticator.
    public static let zapDomain = "ctnas"

    public var role: Role
    /// Problems worth printing that do not stop the program (e.g. a secret key readable by others).
    public var warnings: [String]
    /// For a server loaded from files: the allow-list file, so it can be read again on reload.
    public var authorizedKeysFile: String?

    public init(role: Role, warnings: [String] = [], authorizedKeysFile: String? = nil) {
        self.role = role
        self.warnings = warnings
        self.authorizedKeysFile = authorizedKeysFile
    }

    public var keyPair: CurveKeyPair {
        switch role {
        case .server(let kp, _), .client(let kp, _): kp
        }
    }

    public var isServer: Bool {
        if case .server = role { true } else { false }
    }

    /// The coordinator's settings from a keys directory: coordinator.key + authorized_workers.
    public static func server(directory: String) throws -> CurveSecurity {
        let secretFile = CurveKeyFiles.path(directory, CurveKeyFiles.coordinatorSecret)
        let allowFile = CurveKeyFiles.path(directory, CurveKeyFiles.authorizedWorkers)
        let keyPair = try CurveKeyPair.load(secretKeyFile: secretFile)
        let keys = try loadAuthorizedKeys(file: allowFile)
        var warnings = [String]()
        if let w = CurveKeyPair.permissionWarning(secretKeyFile: secretFile) { warnings.append(w) }
        let publicFile = CurveKeyFiles.path(directory, CurveKeyFiles.coordinatorPublic)
        if FileManager.default.fileExists(atPath: publicFile),
           let pub = try? CurveKeyPair.loadPublicKey(file: publicFile), pub != keyPair.publicKey {
            warnings.append("\(publicFile) does not match \(secretFile); workers using it cannot connect")
        }
        if keys.isEmpty { warnings.append("\(allowFile) lists no keys: every worker will be refused") }
        return CurveSecurity(role: .server(keyPair: keyPair, authorizedKeys: keys), warnings: warnings,
                             authorizedKeysFile: allowFile)
    }

    /// A worker's settings from a keys directory: worker.key + coordinator.pub.
    public static func client(directory: String) throws -> CurveSecurity {
        try client(secretKeyFile: CurveKeyFiles.path(directory, CurveKeyFiles.workerSecret),
                   serverPublicKeyFile: CurveKeyFiles.path(directory, CurveKeyFiles.coordinatorPublic))
    }

    /// A worker's settings from its secret key file and the coordinator's public key file.
    public static func client(secretKeyFile: String, serverPublicKeyFile: String) throws -> CurveSecurity {
        let keyPair = try CurveKeyPair.load(secretKeyFile: secretKeyFile)
        let server = try CurveKeyPair.loadPublicKey(file: serverPublicKeyFile)
        var warnings = [String]()
        if let w = CurveKeyPair.permissionWarning(secretKeyFile: secretKeyFile) { warnings.append(w) }
        return CurveSecurity(role: .client(keyPair: keyPair, serverPublicKey: server), warnings: warnings)
    }

    /// Reads an allow-list: one Z85 public key per line, optionally followed by a `#` comment;
    /// blank lines and lines starting with `#` are ignored. Any other line is an error naming it.
    public static func loadAuthorizedKeys(file path: String) throws -> Set<String> {
        try parseAuthorizedKeys(CurveKeyPair.readText(path, what: "authorized keys"), source: path)
    }

    public static func parseAuthorizedKeys(_ text: String, source: String = "authorized keys") throws -> Set<String> {
        var keys = Set<String>()
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            // A key may itself start with '#' (it is a Z85 character), so a valid key wins.
            if CurveKeyPair.isValidKey(tokens[0]) {
                guard tokens.count == 1 || tokens[1].hasPrefix("#") else {
                    throw CurveKeyError("\(source) line \(index + 1): unexpected text after the key (start comments with '#')")
                }
                keys.insert(tokens[0])
                continue
            }
            if line.hasPrefix("#") { continue }
            do {
                try CurveKeyPair.validate(tokens[0], what: "public key")
            } catch let error as CurveKeyError {
                throw CurveKeyError("\(source) line \(index + 1): \(error.message)")
            }
        }
        return keys
    }

    /// For a server: the same settings admitting one more, freshly generated client key, plus
    /// client settings holding that key, for workers started inside the coordinator's process
    /// (`ctnas search --listen ... --keys DIR`). The key lives only in memory.
    public func admittingEphemeralClient() throws -> (server: CurveSecurity, client: CurveSecurity) {
        guard case .server(let serverPair, let keys) = role else {
            throw CurveKeyError("admittingEphemeralClient needs server settings")
        }
        let local = try CurveKeyPair.generate()
        var server = self
        server.role = .server(keyPair: serverPair, authorizedKeys: keys.union([local.publicKey]))
        return (server, CurveSecurity(role: .client(keyPair: local, serverPublicKey: serverPair.publicKey)))
    }
}

// MARK: - Writing key files

public enum CurveKeyFiles {
    public static let coordinatorSecret = "coordinator.key"
    public static let coordinatorPublic = "coordinator.pub"
    public static let workerSecret = "worker.key"
    public static let workerPublic = "worker.pub"
    public static let authorizedWorkers = "authorized_workers"

    static func path(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }

    /// Creates `directory` (mode 0700) if needed and writes the coordinator's key pair, worker key
    /// pairs (`worker.key`/`worker.pub`, or `worker-1` ... `worker-N` when `workers` is given) and
    /// `authorized_workers` listing every worker written. Secret keys get mode 0600. Refuses,
    /// before writing anything, if any of these files exists, unless `force`.
    /// Returns the paths written, in order.
    @discardableResult
    public static func generate(directory: String, workers: Int? = nil, force: Bool = false) throws -> [String] {
        if let n = workers, !(1...10_000).contains(n) {
            throw CurveKeyError("the number of worker key pairs must be in 1...10000, got \(n)")
        }
        let names = workers.map { n in (1...n).map { "worker-\($0)" } } ?? ["worker"]
        var targets = [coordinatorSecret, coordinatorPublic]
        for name in names { targets += [name + ".key", name + ".pub"] }
        targets.append(authorizedWorkers)
        let paths = targets.map { path(directory, $0) }

        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CurveKeyError("\(directory) exists and is not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw CurveKeyError("cannot create \(directory): \(error.localizedDescription)")
            }
        }
        let existing = paths.filter { p in var st = stat(); return lstat(p, &st) == 0 }
        if !existing.isEmpty && !force {
            throw CurveKeyError("refusing to overwrite existing key file(s): \(existing.joined(separator: ", ")) (use --force to replace them)")
        }
        for p in existing where unlink(p) != 0 {
            throw CurveKeyError("cannot remove \(p): \(String(cString: strerror(errno)))")
        }

        let coordinator = try CurveKeyPair.generate()
        try writeFile(coordinator.secretKey + "\n", to: path(directory, coordinatorSecret), mode: 0o600)
        try writeFile(coordinator.publicKey + "\n", to: path(directory, coordinatorPublic), mode: 0o644)
        var allowList = "# Public keys of the workers this coordinator admits: one Z85 key per line.\n"
        allowList += "# Edit and reload (SIGHUP) or restart the coordinator to change who may connect.\n"
        for name in names {
            let pair = try CurveKeyPair.generate()
            try writeFile(pair.secretKey + "\n", to: path(directory, name + ".key"), mode: 0o600)
            try writeFile(pair.publicKey + "\n", to: path(directory, name + ".pub"), mode: 0o644)
            allowList += "\(pair.publicKey) # \(name)\n"
        }
        try writeFile(allowList, to: path(directory, authorizedWorkers), mode: 0o644)
        return paths
    }

    /// Creates `path` exclusively (never follows or replaces an existing file) with `mode`.
    static func writeFile(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CurveKeyError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else { throw CurveKeyError("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CurveKeyError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw CurveKeyError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}

// MARK: - Where an unsecured coordinator may listen

/// Listening without CURVE on an address other hosts can reach.
public struct ListenAddressError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum ListenPolicy {
    /// True for endpoints only this host can reach: inproc://, ipc://, and tcp:// on 127.0.0.0/8,
    /// localhost or [::1].
    public static func isLocal(_ endpoint: String) -> Bool {
        let e = endpoint.lowercased()
        if e.hasPrefix("inproc://") || e.hasPrefix("ipc://") { return true }
        guard e.hasPrefix("tcp://") else { return false }
        var rest = Substring(e.dropFirst("tcp://".count))
        // The port: everything after the last ':' (ports, '*' or '!' forms alike).
        guard let colon = rest.lastIndex(of: ":") else { return false }
        rest = rest[..<colon]
        let host = String(rest)
        if host == "localhost" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil })
        else { return false }
        return octets[0] == "127"
    }

    /// Without keys only local endpoints are allowed; any other address throws, unless `insecure`,
    /// in which case the warning to print is returned. Nil when there is nothing to say.
    public static func check(_ endpoint: String, secured: Bool, insecure: Bool) throws -> String? {
        if secured || isLocal(endpoint) { return nil }
        if insecure {
            return "warning: listening on \(endpoint) without encryption or authentication (--insecure): "
                + "any host that can reach it can join as a worker, read the weights and forge results"
        }
        throw ListenAddressError("refusing to listen on \(endpoint) without keys: other hosts could join unauthenticated "
            + "and read or forge traffic. Create keys with 'ctnas keygen DIR' and pass --keys DIR, listen on "
            + "tcp://127.0.0.1:PORT, or pass --insecure on a trusted network")
    }
}

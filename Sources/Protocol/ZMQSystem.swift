// Thin, typed wrappers over the libzmq C API.
//
// Modelled on swift-nio's `Sources/NIOPosix/System.swift`: every `zmq_*` C call
// used by this module is wrapped exactly once, in one small internal function of
// `ZMQSys`. Those wrappers turn the C error convention (-1 / NULL return plus
// `zmq_errno()`) into a thrown `ZMQError` carrying the errno, the `zmq_strerror`
// text and the name of the C call, and retry transparently on EINTR. Nothing
// outside this file calls into `CZeroMQ` directly.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Error

/// A failed libzmq call.
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Name of the C function that failed, e.g. `"zmq_bind"`.
    public let call: String
    /// The errno reported by `zmq_errno()`.
    public let errno: Int32
    /// `zmq_strerror(errno)`.
    public let message: String

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
        self.message = ZMQSys.strerror(errno)
    }

    public var description: String { "\(call) failed: \(message) (errno \(errno))" }

    /// EAGAIN: a non-blocking operation could not complete, or a send/receive timeout expired.
    public var isWouldBlock: Bool { errno == EAGAIN }
    /// ETERM: the socket's context was shut down / terminated.
    public var isContextTerminated: Bool { errno == ZMQError.ETERM }
    /// EHOSTUNREACH: a ROUTER with `routerMandatory` was asked to send to an unknown routing id.
    public var isHostUnreachable: Bool { errno == EHOSTUNREACH }

    /// libzmq-specific errno values (ZMQ_HAUSNUMERO based; not in the platform libc).
    public static let EFSM: Int32 = 156_384_712 + 51
    public static let ENOCOMPATPROTO: Int32 = 156_384_712 + 52
    public static let ETERM: Int32 = 156_384_712 + 53
    public static let EMTHREAD: Int32 = 156_384_712 + 54
}

// MARK: - Call helpers

/// Outcome of a call that may legitimately report EAGAIN ("would block").
enum ZMQIOResult<T> {
    case processed(T)
    case wouldBlock
}

/// Runs `body` (a C call returning -1 on error), retrying on EINTR and throwing `ZMQError` otherwise.
@inline(__always)
private func zmqCall(_ call: String, _ body: () -> Int32) throws -> Int32 {
    while true {
        let rc = body()
        if rc != -1 { return rc }
        let err = zmq_errno()
        if err == EINTR { continue }
        throw ZMQError(call: call, errno: err)
    }
}

/// Like `zmqCall`, but maps EAGAIN to `.wouldBlock` instead of throwing.
@inline(__always)
private func zmqCallNonBlocking(_ call: String, _ body: () -> Int32) throws -> ZMQIOResult<Int32> {
    while true {
        let rc = body()
        if rc != -1 { return .processed(rc) }
        let err = zmq_errno()
        if err == EINTR { continue }
        if err == EAGAIN { return .wouldBlock }
        throw ZMQError(call: call, errno: err)
    }
}

/// For C calls that return NULL on error.
@inline(__always)
private func zmqCallPointer<P>(_ call: String, _ body: () -> P?) throws -> P {
    while true {
        if let p = body() { return p }
        let err = zmq_errno()
        if err == EINTR { continue }
        throw ZMQError(call: call, errno: err)
    }
}

// MARK: - The wrappers (one per C function)

enum ZMQSys {
    typealias Handle = UnsafeMutableRawPointer

    static func strerror(_ errnum: Int32) -> String {
        guard let s = zmq_strerror(errnum) else { return "Unknown error \(errnum)" }
        return String(cString: s)
    }

    static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }

    // Context

    static func ctxNew() throws -> Handle {
        try zmqCallPointer("zmq_ctx_new") { zmq_ctx_new() }
    }

    static func ctxShutdown(_ ctx: Handle) throws {
        _ = try zmqCall("zmq_ctx_shutdown") { zmq_ctx_shutdown(ctx) }
    }

    static func ctxTerm(_ ctx: Handle) throws {
        _ = try zmqCall("zmq_ctx_term") { zmq_ctx_term(ctx) }
    }

    // Socket lifecycle

    static func socket(_ ctx: Handle, _ type: Int32) throws -> Handle {
        try zmqCallPointer("zmq_socket") { zmq_socket(ctx, type) }
    }

    static func close(_ socket: Handle) throws {
        _ = try zmqCall("zmq_close") { zmq_close(socket) }
    }

    static func bind(_ socket: Handle, _ endpoint: String) throws {
        _ = try zmqCall("zmq_bind") { zmq_bind(socket, endpoint) }
    }

    static func connect(_ socket: Handle, _ endpoint: String) throws {
        _ = try zmqCall("zmq_connect") { zmq_connect(socket, endpoint) }
    }

    static func unbind(_ socket: Handle, _ endpoint: String) throws {
        _ = try zmqCall("zmq_unbind") { zmq_unbind(socket, endpoint) }
    }

    static func disconnect(_ socket: Handle, _ endpoint: String) throws {
        _ = try zmqCall("zmq_disconnect") { zmq_disconnect(socket, endpoint) }
    }

    // Options

    static func setsockopt(_ socket: Handle, _ option: Int32, _ value: UnsafeRawBufferPointer) throws {
        _ = try zmqCall("zmq_setsockopt") {
            zmq_setsockopt(socket, option, value.baseAddress, value.count)
        }
    }

    /// Reads an option into `buffer`; returns the number of bytes written.
    static func getsockopt(_ socket: Handle, _ option: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var size = buffer.count
        _ = try zmqCall("zmq_getsockopt") {
            zmq_getsockopt(socket, option, buffer.baseAddress, &size)
        }
        return size
    }

    // Messages

    static func msgInit(_ msg: UnsafeMutablePointer<zmq_msg_t>) throws {
        _ = try zmqCall("zmq_msg_init") { zmq_msg_init(msg) }
    }

    static func msgInitSize(_ msg: UnsafeMutablePointer<zmq_msg_t>, _ size: Int) throws {
        _ = try zmqCall("zmq_msg_init_size") { zmq_msg_init_size(msg, size) }
    }

    static func msgData(_ msg: UnsafeMutablePointer<zmq_msg_t>) -> UnsafeMutableRawPointer? {
        zmq_msg_data(msg)
    }

    static func msgSize(_ msg: UnsafePointer<zmq_msg_t>) -> Int {
        zmq_msg_size(msg)
    }

    static func msgMore(_ msg: UnsafePointer<zmq_msg_t>) -> Bool {
        zmq_msg_more(msg) != 0
    }

    /// Closing an initialised message cannot meaningfully fail; errors (EFAULT) are ignored.
    static func msgClose(_ msg: UnsafeMutablePointer<zmq_msg_t>) {
        _ = try? zmqCall("zmq_msg_close") { zmq_msg_close(msg) }
    }

    static func msgSend(_ msg: UnsafeMutablePointer<zmq_msg_t>, _ socket: Handle, _ flags: Int32) throws -> ZMQIOResult<Int32> {
        try zmqCallNonBlocking("zmq_msg_send") { zmq_msg_send(msg, socket, flags) }
    }

    static func msgRecv(_ msg: UnsafeMutablePointer<zmq_msg_t>, _ socket: Handle, _ flags: Int32) throws -> ZMQIOResult<Int32> {
        try zmqCallNonBlocking("zmq_msg_recv") { zmq_msg_recv(msg, socket, flags) }
    }

    // Polling

    /// `zmq_poll`; on EINTR retries with the remaining part of the timeout (`-1` = infinite).
    static func poll(_ items: UnsafeMutableBufferPointer<zmq_pollitem_t>, timeoutMs: Int) throws -> Int32 {
        let clock = ContinuousClock()
        let deadline = timeoutMs >= 0 ? clock.now.advanced(by: .milliseconds(timeoutMs)) : nil
        while true {
            var timeout = timeoutMs
            if let deadline {
                let left = clock.now.duration(to: deadline)
                let (seconds, attoseconds) = left.components
                timeout = max(0, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
            }
            let rc = zmq_poll(items.baseAddress, Int32(items.count), timeout)
            if rc != -1 { return rc }
            let err = zmq_errno()
            if err == EINTR { continue }
            throw ZMQError(call: "zmq_poll", errno: err)
        }
    }

    // CURVE / Z85

    static func curveKeypair() throws -> (publicKey: String, secretKey: String) {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        _ = try zmqCall("zmq_curve_keypair") { zmq_curve_keypair(&pub, &sec) }
        return (cString(pub), cString(sec))
    }

    static func curvePublic(secretKey: String) throws -> String {
        var pub = [CChar](repeating: 0, count: 41)
        _ = try zmqCall("zmq_curve_public") { zmq_curve_public(&pub, secretKey) }
        return cString(pub)
    }

    /// `zmq_z85_encode`; `data.count` must be a multiple of 4.
    static func z85Encode(_ data: [UInt8]) throws -> String {
        var out = [CChar](repeating: 0, count: data.count * 5 / 4 + 1)
        _ = try zmqCallPointer("zmq_z85_encode") { zmq_z85_encode(&out, data, data.count) }
        return cString(out)
    }

    /// `zmq_z85_decode`; `text.utf8.count` must be a multiple of 5.
    static func z85Decode(_ text: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: text.utf8.count * 4 / 5)
        _ = try zmqCallPointer("zmq_z85_decode") { zmq_z85_decode(&out, text) }
        return out
    }

    private static func cString(_ chars: [CChar]) -> String {
        let bytes = chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

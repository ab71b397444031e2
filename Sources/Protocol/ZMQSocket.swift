// ZeroMQ context, socket and poller.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Context

/// A ZeroMQ context. Thread safe: sockets may be created from any thread.
/// `deinit` terminates the context; since every `ZMQSocket` keeps its context alive,
/// that happens only after all of its sockets have been closed.
public final class ZMQContext: @unchecked Sendable {
    let handle: ZMQSys.Handle

    public init() throws {
        handle = try ZMQSys.ctxNew()
    }

    /// Makes every blocking operation on this context's sockets (now and later) fail with
    /// ETERM (`ZMQError.isContextTerminated`). Sockets must still be closed. Idempotent.
    public func shutdown() {
        try? ZMQSys.ctxShutdown(handle)
    }

    deinit {
        try? ZMQSys.ctxTerm(handle)
    }
}

// MARK: - Socket

/// A ZeroMQ socket. Not thread safe: owned and used by one thread at a time.
/// Created with a bounded linger (200 ms) so closing never hangs; closed by `close()` or `deinit`.
public final class ZMQSocket {
    public enum Kind: Sendable {
        case router, dealer, pair, req, rep

        var rawValue: Int32 {
            switch self {
            case .router: return ZMQ_ROUTER
            case .dealer: return ZMQ_DEALER
            case .pair: return ZMQ_PAIR
            case .req: return ZMQ_REQ
            case .rep: return ZMQ_REP
            }
        }
    }

    /// Socket options. Set them before `bind`/`connect` unless noted.
    public enum Option: Sendable {
        /// ZMQ_ROUTING_ID (1...255 bytes, must not start with 0). Set before connect.
        case routingId([UInt8])
        /// ZMQ_ROUTER_MANDATORY: sending to an unknown routing id throws EHOSTUNREACH instead of dropping.
        case routerMandatory(Bool)
        /// ZMQ_MAXMSGSIZE in bytes (-1 = unlimited): a peer sending a larger message is disconnected.
        case maxMessageSize(Int64)
        /// ZMQ_SNDHWM / ZMQ_RCVHWM in messages (0 = unlimited).
        case sendHighWaterMark(Int32)
        case receiveHighWaterMark(Int32)
        /// ZMQ_RECONNECT_IVL / ZMQ_RECONNECT_IVL_MAX in ms (exponential back-off up to the max).
        case reconnectIntervalMs(Int32)
        case reconnectIntervalMaxMs(Int32)
        /// ZMQ_HANDSHAKE_IVL in ms (0 = no limit).
        case handshakeIntervalMs(Int32)
        /// ZMQ_HEARTBEAT_IVL / ZMQ_HEARTBEAT_TIMEOUT / ZMQ_HEARTBEAT_TTL in ms (ZMTP 3.1 PING/PONG).
        case heartbeatIntervalMs(Int32)
        case heartbeatTimeoutMs(Int32)
        case heartbeatTTLMs(Int32)
        /// ZMQ_IMMEDIATE: queue messages only to completed connections.
        case immediate(Bool)
        /// ZMQ_LINGER in ms (-1 = forever; the default set by `init` is 200).
        case lingerMs(Int32)
        /// ZMQ_SNDTIMEO / ZMQ_RCVTIMEO in ms (-1 = block forever). On expiry `send` returns
        /// false and `receive` returns nil. May be set at any time.
        case sendTimeoutMs(Int32)
        case receiveTimeoutMs(Int32)
        /// ZMQ_ZAP_DOMAIN.
        case zapDomain(String)
    }

    public static let defaultLingerMs: Int32 = 200

    public let context: ZMQContext
    public let kind: Kind
    private var handle: ZMQSys.Handle?

    public init(context: ZMQContext, kind: Kind) throws {
        self.context = context
        self.kind = kind
        let h = try ZMQSys.socket(context.handle, kind.rawValue)
        handle = h
        do {
            try setInt32(ZMQ_LINGER, ZMQSocket.defaultLingerMs)
        } catch {
            try? ZMQSys.close(h)
            handle = nil
            throw error
        }
    }

    deinit {
        close()
    }

    /// Closes the socket (idempotent). Later operations throw ENOTSOCK.
    public func close() {
        if let h = handle {
            handle = nil
            try? ZMQSys.close(h)
        }
    }

    private func live(_ call: String) throws -> ZMQSys.Handle {
        guard let h = handle else { throw ZMQError(call: call, errno: ENOTSOCK) }
        return h
    }

    // MARK: Endpoints

    public func bind(_ endpoint: String) throws {
        try ZMQSys.bind(live("zmq_bind"), endpoint)
    }

    public func connect(_ endpoint: String) throws {
        try ZMQSys.connect(live("zmq_connect"), endpoint)
    }

    public func unbind(_ endpoint: String) throws {
        try ZMQSys.unbind(live("zmq_unbind"), endpoint)
    }

    public func disconnect(_ endpoint: String) throws {
        try ZMQSys.disconnect(live("zmq_disconnect"), endpoint)
    }

    /// ZMQ_LAST_ENDPOINT, e.g. "tcp://127.0.0.1:41234" after `bind("tcp://127.0.0.1:*")`.
    public var lastEndpoint: String {
        get throws {
            let h = try live("zmq_getsockopt")
            var buffer = [UInt8](repeating: 0, count: 1024)
            let n = try buffer.withUnsafeMutableBytes { try ZMQSys.getsockopt(h, ZMQ_LAST_ENDPOINT, $0) }
            return String(decoding: buffer.prefix(n).prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    // MARK: Options

    public func set(_ option: Option) throws {
        switch option {
        case .routingId(let id): try setBytes(ZMQ_ROUTING_ID, id)
        case .routerMandatory(let on): try setInt32(ZMQ_ROUTER_MANDATORY, on ? 1 : 0)
        case .maxMessageSize(let n): try setInt64(ZMQ_MAXMSGSIZE, n)
        case .sendHighWaterMark(let n): try setInt32(ZMQ_SNDHWM, n)
        case .receiveHighWaterMark(let n): try setInt32(ZMQ_RCVHWM, n)
        case .reconnectIntervalMs(let n): try setInt32(ZMQ_RECONNECT_IVL, n)
        case .reconnectIntervalMaxMs(let n): try setInt32(ZMQ_RECONNECT_IVL_MAX, n)
        case .handshakeIntervalMs(let n): try setInt32(ZMQ_HANDSHAKE_IVL, n)
        case .heartbeatIntervalMs(let n): try setInt32(ZMQ_HEARTBEAT_IVL, n)
        case .heartbeatTimeoutMs(let n): try setInt32(ZMQ_HEARTBEAT_TIMEOUT, n)
        case .heartbeatTTLMs(let n): try setInt32(ZMQ_HEARTBEAT_TTL, n)
        case .immediate(let on): try setInt32(ZMQ_IMMEDIATE, on ? 1 : 0)
        case .lingerMs(let n): try setInt32(ZMQ_LINGER, n)
        case .sendTimeoutMs(let n): try setInt32(ZMQ_SNDTIMEO, n)
        case .receiveTimeoutMs(let n): try setInt32(ZMQ_RCVTIMEO, n)
        case .zapDomain(let d): try setBytes(ZMQ_ZAP_DOMAIN, Array(d.utf8))
        }
    }

    public func set(_ options: [Option]) throws {
        for option in options { try set(option) }
    }

    // MARK: CurveZMQ

    /// Makes this socket a CURVE server (ZMQ_CURVE_SERVER=1, ZMQ_CURVE_SECRETKEY). Z85, 40 chars.
    /// Call before bind. Clients are authenticated by the ZAP handler bound at
    /// `ZAPRequest.endpoint` in the same context, if any (otherwise any client key is accepted).
    public func curveServer(secretKey: String) throws {
        try setInt32(ZMQ_CURVE_SERVER, 1)
        try setBytes(ZMQ_CURVE_SECRETKEY, try ZMQSocket.curveKeyBytes(secretKey))
    }

    /// Makes this socket a CURVE client (ZMQ_CURVE_SERVERKEY/PUBLICKEY/SECRETKEY). Z85, 40 chars.
    /// Call before connect.
    public func curveClient(serverPublicKey: String, publicKey: String, secretKey: String) throws {
        try setBytes(ZMQ_CURVE_SERVERKEY, try ZMQSocket.curveKeyBytes(serverPublicKey))
        try setBytes(ZMQ_CURVE_PUBLICKEY, try ZMQSocket.curveKeyBytes(publicKey))
        try setBytes(ZMQ_CURVE_SECRETKEY, try ZMQSocket.curveKeyBytes(secretKey))
    }

    private static func curveKeyBytes(_ z85: String) throws -> [UInt8] {
        let bytes = Array(z85.utf8)
        guard bytes.count == 40 else { throw ZMQError(call: "zmq_setsockopt", errno: EINVAL) }
        return bytes
    }

    // MARK: Messages

    /// Sends one multipart message (`frames` must be non-empty; for a ROUTER the first frame is
    /// the peer's routing id). Returns false if the message could not be queued: EAGAIN with
    /// `dontWait`, or the send timeout expired. ZeroMQ delivers multipart messages atomically.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        let h = try live("zmq_msg_send")
        guard !frames.isEmpty else { throw ZMQError(call: "zmq_msg_send", errno: EINVAL) }
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < last ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            var msg = zmq_msg_t()
            try ZMQSys.msgInitSize(&msg, frame.count)
            // After a successful send the message is empty; closing it is then a no-op.
            defer { ZMQSys.msgClose(&msg) }
            if !frame.isEmpty, let data = ZMQSys.msgData(&msg) {
                frame.withUnsafeBytes { src in
                    data.copyMemory(from: src.baseAddress!, byteCount: src.count)
                }
            }
            switch try ZMQSys.msgSend(&msg, h, flags) {
            case .processed:
                continue
            case .wouldBlock:
                // Later parts of an accepted message never block (atomic multipart).
                if index == 0 { return false }
                throw ZMQError(call: "zmq_msg_send", errno: EAGAIN)
            }
        }
        return true
    }

    /// Receives one whole multipart message. Returns nil if none is available (`dontWait`) or the
    /// receive timeout expired. For a ROUTER the first frame is the sender's routing id.
    public func receive(dontWait: Bool = false) throws -> [[UInt8]]? {
        let h = try live("zmq_msg_recv")
        var frames: [[UInt8]] = []
        var msg = zmq_msg_t()
        try ZMQSys.msgInit(&msg)
        // One zmq_msg_t reused for every part (zmq_msg_recv releases previous content);
        // closed exactly once on every path.
        defer { ZMQSys.msgClose(&msg) }
        var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
        while true {
            switch try ZMQSys.msgRecv(&msg, h, flags) {
            case .processed:
                break
            case .wouldBlock:
                if frames.isEmpty { return nil }
                throw ZMQError(call: "zmq_msg_recv", errno: EAGAIN)
            }
            let size = ZMQSys.msgSize(&msg)
            if size > 0, let data = ZMQSys.msgData(&msg) {
                frames.append([UInt8](UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            if !ZMQSys.msgMore(&msg) { return frames }
            flags = 0  // remaining parts have already arrived
        }
    }

    // MARK: Option helpers

    private func setInt32(_ option: Int32, _ value: Int32) throws {
        let h = try live("zmq_setsockopt")
        var v = value
        try withUnsafeBytes(of: &v) { try ZMQSys.setsockopt(h, option, $0) }
    }

    private func setInt64(_ option: Int32, _ value: Int64) throws {
        let h = try live("zmq_setsockopt")
        var v = value
        try withUnsafeBytes(of: &v) { try ZMQSys.setsockopt(h, option, $0) }
    }

    private func setBytes(_ option: Int32, _ value: [UInt8]) throws {
        let h = try live("zmq_setsockopt")
        try value.withUnsafeBytes { try ZMQSys.setsockopt(h, option, $0) }
    }

    fileprivate func pollHandle() throws -> ZMQSys.Handle {
        try live("zmq_poll")
    }
}

@available(*, unavailable, message: "ZeroMQ sockets are not thread safe; use one per thread")
extension ZMQSocket: Sendable {}

// MARK: - Poller

/// Waits on several sockets with `zmq_poll`. Holds strong references to the sockets.
public struct ZMQPoller {
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }
        public static let pollIn = Events(rawValue: Int16(ZMQ_POLLIN))
        public static let pollOut = Events(rawValue: Int16(ZMQ_POLLOUT))
        public static let pollError = Events(rawValue: Int16(ZMQ_POLLERR))
    }

    private var sockets: [ZMQSocket] = []
    private var interests: [Events] = []

    public init() {}

    public var count: Int { sockets.count }

    /// Registers `socket`; returns its index in the array returned by `poll`.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, events: Events = .pollIn) -> Int {
        sockets.append(socket)
        interests.append(events)
        return sockets.count - 1
    }

    /// Waits up to `timeoutMs` (0 = just check, -1 = forever) until at least one socket is ready.
    /// Returns the readiness of each socket in registration order (empty set = not ready).
    public func poll(timeoutMs: Int) throws -> [Events] {
        var items = try zip(sockets, interests).map { socket, events in
            zmq_pollitem_t(socket: try socket.pollHandle(), fd: 0, events: events.rawValue, revents: 0)
        }
        _ = try items.withUnsafeMutableBufferPointer { try ZMQSys.poll($0, timeoutMs: timeoutMs) }
        return items.map { Events(rawValue: $0.revents) }
    }
}

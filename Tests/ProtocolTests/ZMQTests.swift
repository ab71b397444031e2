import Foundation
import XCTest
import Protocol

#if canImport(Glibc)
import Glibc
#endif

/// Tests for the thin ZeroMQ layer. Loopback only (inproc / tcp://127.0.0.1); every blocking
/// receive has a timeout so each test is bounded in time.
final class ZMQTests: XCTestCase {

    // MARK: Helpers

    private func socket(_ ctx: ZMQContext, _ kind: ZMQSocket.Kind, timeoutMs: Int32 = 5000) throws -> ZMQSocket {
        let s = try ZMQSocket(context: ctx, kind: kind)
        try s.set([.receiveTimeoutMs(timeoutMs), .sendTimeoutMs(timeoutMs), .lingerMs(0)])
        return s
    }

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Receives until a message arrives or `deadlineMs` elapses; collects everything seen.
    private func drain(_ s: ZMQSocket, forMs ms: Int) throws -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        let end = Date().addingTimeInterval(Double(ms) / 1000)
        var poller = ZMQPoller()
        poller.add(s)
        while Date() < end {
            let left = max(0, Int(end.timeIntervalSinceNow * 1000))
            if try poller.poll(timeoutMs: left)[0].contains(.pollIn), let m = try s.receive(dontWait: true) {
                out.append(m)
            }
        }
        return out
    }

    // MARK: Round trips

    private func roundTrip(bindTo: String) throws {
        let ctx = try ZMQContext()
        let router = try socket(ctx, .router)
        try router.set(.routerMandatory(true))
        try router.bind(bindTo)
        let endpoint = try router.lastEndpoint
        if bindTo.hasPrefix("tcp://") {
            XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.1:"), endpoint)
            XCTAssertNotNil(Int(endpoint.split(separator: ":").last ?? ""), endpoint)
        }

        let dealer = try socket(ctx, .dealer)
        try dealer.set(.routingId(bytes("worker-1")))
        try dealer.connect(endpoint)

        XCTAssertTrue(try dealer.send([bytes("hello"), [], [1, 2, 3]]))
        let got = try XCTUnwrap(router.receive())
        XCTAssertEqual(got, [bytes("worker-1"), bytes("hello"), [], [1, 2, 3]])

        XCTAssertTrue(try router.send([got[0], bytes("reply"), [9]]))
        XCTAssertEqual(try dealer.receive(), [bytes("reply"), [9]])
    }

    func testZMQRouterDealerRoundTripInproc() throws {
        try roundTrip(bindTo: "inproc://zmq-test-roundtrip")
    }

    func testZMQRouterDealerRoundTripTCP() throws {
        try roundTrip(bindTo: "tcp://127.0.0.1:*")
    }

    // MARK: Sizes

    func testZMQLargeMessageArrivesIntact() throws {
        let ctx = try ZMQContext()
        let router = try socket(ctx, .router)
        try router.set(.maxMessageSize(16 << 20))
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try socket(ctx, .dealer)
        try dealer.connect(router.lastEndpoint)

        var big = [UInt8](repeating: 0, count: 8 << 20)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        XCTAssertTrue(try dealer.send([bytes("blob"), big]))
        let got = try XCTUnwrap(router.receive())
        XCTAssertEqual(got.count, 3)
        XCTAssertEqual(got[1], bytes("blob"))
        XCTAssertEqual(got[2].count, big.count)
        XCTAssertTrue(got[2] == big)
    }

    func testZMQOversizedMessageDropsConnectionNotReceiver() throws {
        let ctx = try ZMQContext()
        let router = try socket(ctx, .router, timeoutMs: 500)
        try router.set(.maxMessageSize(1 << 20))
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try socket(ctx, .dealer)
        try dealer.set([.reconnectIntervalMs(50), .reconnectIntervalMaxMs(200)])
        try dealer.connect(router.lastEndpoint)

        XCTAssertTrue(try dealer.send([[UInt8](repeating: 7, count: 2 << 20)]))
        XCTAssertNil(try router.receive(), "oversized message must not be delivered")

        // The receiver is still healthy and the dealer reconnects: small messages get through.
        var delivered: [[UInt8]]?
        let end = Date().addingTimeInterval(8)
        while delivered == nil && Date() < end {
            XCTAssertTrue(try dealer.send([bytes("ping")]))
            if let m = try router.receive() {
                XCTAssertEqual(m.count, 2, "only small messages may arrive")
                delivered = m
            }
        }
        XCTAssertEqual(delivered?.last, bytes("ping"))
    }

    // MARK: Errors

    func testZMQErrorsAreTyped() throws {
        let ctx = try ZMQContext()
        let router = try socket(ctx, .router, timeoutMs: 100)

        XCTAssertThrowsError(try router.bind("not-an-endpoint")) { error in
            let e = error as? ZMQError
            XCTAssertEqual(e?.call, "zmq_bind")
            XCTAssertEqual(e?.errno, EINVAL)
            XCTAssertTrue(e?.description.contains("zmq_bind") ?? false)
            XCTAssertFalse(e?.message.isEmpty ?? true)
        }

        try router.bind("tcp://127.0.0.1:*")
        let other = try socket(ctx, .router)
        XCTAssertThrowsError(try other.bind(router.lastEndpoint)) { error in
            XCTAssertEqual((error as? ZMQError)?.call, "zmq_bind")
            XCTAssertEqual((error as? ZMQError)?.errno, EADDRINUSE)
        }

        try router.set(.routerMandatory(true))
        XCTAssertThrowsError(try router.send([bytes("nobody"), bytes("x")])) { error in
            let e = error as? ZMQError
            XCTAssertEqual(e?.call, "zmq_msg_send")
            XCTAssertEqual(e?.errno, EHOSTUNREACH)
            XCTAssertEqual(e?.isHostUnreachable, true)
        }

        XCTAssertNil(try router.receive(dontWait: true))
        XCTAssertNil(try router.receive())  // 100 ms receive timeout
        XCTAssertThrowsError(try router.send([]))

        other.close()
        XCTAssertThrowsError(try other.bind("inproc://closed")) { error in
            XCTAssertEqual((error as? ZMQError)?.errno, ENOTSOCK)
        }
    }

    func testZMQContextShutdownUnblocksWithETERM() throws {
        let ctx = try ZMQContext()
        let dealer = try socket(ctx, .dealer)
        ctx.shutdown()
        XCTAssertThrowsError(try dealer.receive()) { error in
            XCTAssertEqual((error as? ZMQError)?.isContextTerminated, true)
            XCTAssertEqual((error as? ZMQError)?.errno, ZMQError.ETERM)
        }
    }

    // MARK: Poll

    func testZMQPollTimesOutWhenIdleAndReportsReadiness() throws {
        let ctx = try ZMQContext()
        let router = try socket(ctx, .router)
        try router.bind("inproc://zmq-test-poll")
        let dealer = try socket(ctx, .dealer)
        try dealer.connect("inproc://zmq-test-poll")

        var poller = ZMQPoller()
        let r = poller.add(router)
        let d = poller.add(dealer, events: [.pollIn, .pollOut])

        var idle = ZMQPoller()
        idle.add(router)
        let start = Date()
        XCTAssertEqual(try idle.poll(timeoutMs: 150), [[]])
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.12)
        XCTAssertLessThan(elapsed, 3)

        let before = try poller.poll(timeoutMs: 0)
        XCTAssertFalse(before[r].contains(.pollIn))
        XCTAssertTrue(before[d].contains(.pollOut))

        XCTAssertTrue(try dealer.send([bytes("wake")]))
        let after = try poller.poll(timeoutMs: 2000)
        XCTAssertTrue(after[r].contains(.pollIn))
        XCTAssertEqual(try router.receive(dontWait: true)?.last, bytes("wake"))
        XCTAssertFalse(try poller.poll(timeoutMs: 0)[r].contains(.pollIn))
    }

    // MARK: Reconnect

    func testZMQDealerConnectedBeforeBindGetsThrough() throws {
        let ctx = try ZMQContext()
        // A free loopback port, found with a plain BSD socket (bound, never listening, closed
        // synchronously) so nothing accepts the dealer's attempts before the router binds.
        let endpoint = "tcp://127.0.0.1:\(try freeLoopbackPort())"

        let dealer = try socket(ctx, .dealer)
        try dealer.set([.reconnectIntervalMs(50), .reconnectIntervalMaxMs(100), .routingId(bytes("early"))])
        try dealer.connect(endpoint)
        XCTAssertTrue(try dealer.send([bytes("queued before bind")]))
        Thread.sleep(forTimeInterval: 0.3)  // let a few connection attempts fail

        let router = try socket(ctx, .router)
        try router.bind(endpoint)
        XCTAssertEqual(try router.receive(), [bytes("early"), bytes("queued before bind")])
    }

    private func freeLoopbackPort() throws -> UInt16 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EBADF) }
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                Glibc.bind(fd, sa, len) == 0 ? getsockname(fd, sa, &len) : -1
            }
        }
        guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
        return UInt16(bigEndian: addr.sin_port)
    }

    // MARK: Curve

    func testZMQCurveKeys() throws {
        try XCTSkipUnless(ZMQCurve.isAvailable, "libzmq built without CURVE")
        let (pub, sec) = try ZMQCurve.keyPair()
        XCTAssertEqual(pub.utf8.count, 40)
        XCTAssertEqual(sec.utf8.count, 40)
        XCTAssertNotEqual(pub, sec)
        XCTAssertEqual(try ZMQCurve.publicKey(forSecretKey: sec), pub)
        let raw = try ZMQCurve.z85Decode(pub)
        XCTAssertEqual(raw.count, 32)
        XCTAssertEqual(try ZMQCurve.z85Encode(raw), pub)
        XCTAssertThrowsError(try ZMQCurve.z85Encode([1, 2, 3]))
        XCTAssertThrowsError(try ZMQCurve.z85Decode("abcd"))
    }

    func testZMQCurveRoundTripAndWrongServerKey() throws {
        try XCTSkipUnless(ZMQCurve.isAvailable, "libzmq built without CURVE")
        let ctx = try ZMQContext()
        let server = try ZMQCurve.keyPair()
        let client = try ZMQCurve.keyPair()
        let impostor = try ZMQCurve.keyPair()

        let router = try socket(ctx, .router, timeoutMs: 500)
        try router.curveServer(secretKey: server.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint

        // Client that expects a different server key: the handshake fails, nothing arrives.
        let wrong = try socket(ctx, .dealer)
        try wrong.curveClient(serverPublicKey: impostor.publicKey, publicKey: client.publicKey, secretKey: client.secretKey)
        try wrong.connect(endpoint)
        XCTAssertTrue(try wrong.send([bytes("should not arrive")]))
        XCTAssertNil(try router.receive())
        wrong.close()

        let good = try socket(ctx, .dealer)
        try good.curveClient(serverPublicKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey)
        try good.connect(endpoint)
        XCTAssertTrue(try good.send([bytes("secret hello")]))
        try router.set(.receiveTimeoutMs(5000))
        let got = try XCTUnwrap(router.receive())
        XCTAssertEqual(got.last, bytes("secret hello"))
        XCTAssertTrue(try router.send([got[0], bytes("secret reply")]))
        XCTAssertEqual(try good.receive(), [bytes("secret reply")])
    }

    /// Decisions taken by the ZAP handler thread.
    private final class ZAPLog: @unchecked Sendable {
        private let lock = NSLock()
        private var _allowed = 0, _denied = 0, _malformed = 0
        private var _error: String?
        func record(allowed: Bool) { lock.lock(); if allowed { _allowed += 1 } else { _denied += 1 }; lock.unlock() }
        func recordMalformed() { lock.lock(); _malformed += 1; lock.unlock() }
        func fail(_ e: Error) { lock.lock(); _error = "\(e)"; lock.unlock() }
        var snapshot: (allowed: Int, denied: Int, malformed: Int, error: String?) {
            lock.lock(); defer { lock.unlock() }
            return (_allowed, _denied, _malformed, _error)
        }
    }

    /// Runs a ZAP handler (REP at ZAPRequest.endpoint) on a background thread accepting only
    /// `allowedKeys` (raw 32-byte CURVE public keys). Stopped via an inproc PAIR control socket.
    private func startZAPHandler(context ctx: ZMQContext, allowedKeys: Set<[UInt8]>, log: ZAPLog,
                                 control: String) -> DispatchSemaphore {
        let ready = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { finished.signal() }
            do {
                let zap = try ZMQSocket(context: ctx, kind: .rep)
                try zap.set(.lingerMs(0))
                try zap.bind(ZAPRequest.endpoint)
                let stop = try ZMQSocket(context: ctx, kind: .pair)
                try stop.set(.lingerMs(0))
                try stop.bind(control)
                ready.signal()
                var poller = ZMQPoller()
                let zapIndex = poller.add(zap)
                let stopIndex = poller.add(stop)
                while true {
                    let ready = try poller.poll(timeoutMs: 1000)
                    if ready[stopIndex].contains(.pollIn) { return }
                    guard ready[zapIndex].contains(.pollIn), let frames = try zap.receive(dontWait: true) else { continue }
                    if let request = ZAPRequest(frames: frames) {
                        let ok = request.curvePublicKey.map { allowedKeys.contains($0) } ?? false
                        log.record(allowed: ok)
                        try zap.send(ok ? request.reply(statusCode: "200", statusText: "OK",
                                                        userId: request.curvePublicKeyZ85 ?? "")
                                        : request.reply(statusCode: "400", statusText: "unknown key", userId: ""))
                    } else {
                        log.recordMalformed()
                        let id = frames.count > 1 ? frames[1] : []
                        try zap.send([Array("1.0".utf8), id, Array("500".utf8), Array("malformed".utf8), [], []])
                    }
                }
            } catch {
                log.fail(error)
                ready.signal()
            }
        }
        thread.start()
        XCTAssertEqual(ready.wait(timeout: .now() + 5), .success)
        return finished
    }

    func testZMQCurveWithZAPAllowList() throws {
        try XCTSkipUnless(ZMQCurve.isAvailable, "libzmq built without CURVE")
        let ctx = try ZMQContext()
        let server = try ZMQCurve.keyPair()
        let known = try ZMQCurve.keyPair()
        let unknown = try ZMQCurve.keyPair()
        let log = ZAPLog()
        let controlEndpoint = "inproc://zmq-test-zap-control"
        let finished = startZAPHandler(context: ctx, allowedKeys: [try ZMQCurve.z85Decode(known.publicKey)],
                                       log: log, control: controlEndpoint)
        XCTAssertNil(log.snapshot.error)

        let router = try socket(ctx, .router, timeoutMs: 5000)
        try router.curveServer(secretKey: server.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint

        let intruder = try socket(ctx, .dealer)
        try intruder.curveClient(serverPublicKey: server.publicKey, publicKey: unknown.publicKey, secretKey: unknown.secretKey)
        try intruder.connect(endpoint)
        XCTAssertTrue(try intruder.send([bytes("intruder")]))
        XCTAssertEqual(try drain(router, forMs: 700), [], "unknown client key must get no traffic through")
        intruder.close()

        let friend = try socket(ctx, .dealer)
        try friend.curveClient(serverPublicKey: server.publicKey, publicKey: known.publicKey, secretKey: known.secretKey)
        try friend.connect(endpoint)
        XCTAssertTrue(try friend.send([bytes("friend")]))
        let got = try XCTUnwrap(router.receive())
        XCTAssertEqual(got.last, bytes("friend"))
        XCTAssertTrue(try router.send([got[0], bytes("welcome")]))
        XCTAssertEqual(try friend.receive(), [bytes("welcome")])

        // Stop the handler thread cleanly.
        let control = try socket(ctx, .pair)
        try control.connect(controlEndpoint)
        XCTAssertTrue(try control.send([bytes("stop")]))
        XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)

        let s = log.snapshot
        XCTAssertNil(s.error)
        XCTAssertGreaterThanOrEqual(s.denied, 1)
        XCTAssertGreaterThanOrEqual(s.allowed, 1)
        XCTAssertEqual(s.malformed, 0)
    }

    // MARK: ZAP parsing

    func testZMQZAPRequestParsingAndReply() throws {
        let key = [UInt8](repeating: 0xAB, count: 32)
        let frames: [[UInt8]] = [bytes("1.0"), bytes("1"), bytes("global"), bytes("127.0.0.1"), bytes("id"), bytes("CURVE"), key]
        let request = try XCTUnwrap(ZAPRequest(frames: frames))
        XCTAssertEqual(request.version, "1.0")
        XCTAssertEqual(request.requestId, bytes("1"))
        XCTAssertEqual(request.domain, "global")
        XCTAssertEqual(request.address, "127.0.0.1")
        XCTAssertEqual(request.identity, bytes("id"))
        XCTAssertEqual(request.mechanism, "CURVE")
        XCTAssertEqual(request.credentials, [key])
        XCTAssertEqual(request.curvePublicKey, key)
        XCTAssertEqual(request.curvePublicKeyZ85?.utf8.count, 40)

        XCTAssertEqual(request.reply(statusCode: "200", statusText: "OK", userId: "alice"),
                       [bytes("1.0"), bytes("1"), bytes("200"), bytes("OK"), bytes("alice"), []])

        let null = try XCTUnwrap(ZAPRequest(frames: Array(frames[0..<5]) + [bytes("NULL")]))
        XCTAssertNil(null.curvePublicKey)
        XCTAssertNotNil(ZAPRequest(frames: Array(frames[0..<5]) + [bytes("PLAIN"), bytes("u"), bytes("p")]))

        XCTAssertNil(ZAPRequest(frames: []))
        XCTAssertNil(ZAPRequest(frames: Array(frames[0..<5])))                       // too short
        XCTAssertNil(ZAPRequest(frames: [bytes("2.0")] + frames.dropFirst()))        // wrong version
        XCTAssertNil(ZAPRequest(frames: Array(frames[0..<6]) + [[1, 2, 3]]))         // bad CURVE key
        XCTAssertNil(ZAPRequest(frames: Array(frames[0..<6])))                       // CURVE w/o key
        XCTAssertNil(ZAPRequest(frames: Array(frames[0..<5]) + [bytes("NULL"), [1]])) // NULL with creds
        XCTAssertNil(ZAPRequest(frames: Array(frames[0..<5]) + [bytes("GSSAPI")]))    // unknown mechanism
    }
}

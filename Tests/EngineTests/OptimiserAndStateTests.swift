import XCTest
@testable import Engine

final class OptimiserAndStateTests: XCTestCase {
    /// torch.optim.Adam's update written out in Double for three steps.
    func testAdamFollowsPyTorchSemantics() throws {
        let settings = Adam.Settings(learningRate: 0.01, beta1: 0.5, beta2: 0.999, epsilon: 1e-8, weightDecay: 5e-4)
        var parameters: [Float] = [0.3, -1.2, 2.0]
        var adam = Adam(parameterCount: 3, settings: settings)
        var p = parameters.map(Double.init), m = [0.0, 0, 0], v = [0.0, 0, 0]
        let gradients: [[Float]] = [[0.1, -0.4, 0.0], [0.2, 0.3, -1.0], [-0.05, 0.0, 0.5]]
        for (t, g) in gradients.enumerated() {
            adam.update(&parameters, gradient: g)
            let step = Double(t + 1)
            for i in 0..<3 {
                let grad = Double(g[i]) + 5e-4 * p[i]
                m[i] = 0.5 * m[i] + 0.5 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad * grad
                let denominator = v[i].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8
                p[i] -= 0.01 / (1 - pow(0.5, step)) * m[i] / denominator
            }
        }
        for i in 0..<3 { XCTAssertEqual(Double(parameters[i]), p[i], accuracy: 1e-6) }
        XCTAssertEqual(adam.step, 3)
        let restored = try Adam(settings: settings, step: adam.step, firstMoment: adam.firstMoment, secondMoment: adam.secondMoment)
        XCTAssertEqual(restored, adam)
    }

    func testGradientClippingByGlobalNorm() {
        var g: [Float] = [3, 4]
        let norm = clipGradientNorm(&g, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(g[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(g[1], 0.8, accuracy: 1e-5)
        var small: [Float] = [0.1, 0.1]
        clipGradientNorm(&small, maxNorm: 1)
        XCTAssertEqual(small, [0.1, 0.1])
    }

    func testGeneratorStateSerialisesAndContinues() {
        var a = SeededGenerator(seed: 42)
        for _ in 0..<10 { _ = a.next() }
        var b = SeededGenerator(state: a.state)!
        for _ in 0..<100 { XCTAssertEqual(a.next(), b.next()) }
        XCTAssertNil(SeededGenerator(state: [0, 0, 0, 0]))
        XCTAssertNil(SeededGenerator(state: [1, 2]))
        var c = SeededGenerator(seed: 43)
        XCTAssertNotEqual(SeededGenerator(seed: 42).state, c.state)
        // Uniform integers without bias: every value of a small range appears about equally often.
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[c.nextInt(below: 7)] += 1 }
        XCTAssert(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
        let permutation = c.permutation(50)
        XCTAssertEqual(permutation.sorted(), Array(0..<50))
    }

    func testArchiveRoundTripAndDamageDetection() throws {
        var archive = Archive()
        archive.set("weights", floats: [1.5, -2, .pi])
        archive.set("words", words: [7, .max])
        archive.set("name", bytes: Array("ctnas".utf8))
        let bytes = archive.encoded()
        let decoded = try Archive(decoding: bytes)
        XCTAssertEqual(try decoded.floats("weights"), [1.5, -2, .pi])
        XCTAssertEqual(try decoded.words("words"), [7, .max])
        XCTAssertThrowsError(try decoded.floats("missing"))
        var damaged = bytes
        damaged[20] ^= 1
        XCTAssertThrowsError(try Archive(decoding: damaged)) { XCTAssert("\($0)".contains("checksum")) }
        XCTAssertThrowsError(try Archive(decoding: Array(bytes.prefix(bytes.count - 3))))
        XCTAssertThrowsError(try Archive(decoding: Array("not an archive at all".utf8)))
    }

    func testKendallTauBMatchesTheQuadraticDefinition() {
        var g = SeededGenerator(seed: 5)
        for n in [2, 10, 57, 300] {
            // Coarse values make ties in both lists.
            let x = (0..<n).map { _ in Float(g.nextInt(below: 12)) }
            let y = (0..<n).map { i in x[i] + Float(g.nextInt(below: 9)) - 4 }
            var concordant = 0.0, discordant = 0.0, tiesX = 0.0, tiesY = 0.0
            for i in 0..<n {
                for j in (i + 1)..<n {
                    let dx = x[i] - x[j], dy = y[i] - y[j]
                    if dx == 0 && dy == 0 { continue }
                    if dx == 0 { tiesX += 1 } else if dy == 0 { tiesY += 1 } else if (dx > 0) == (dy > 0) { concordant += 1 } else { discordant += 1 }
                }
            }
            let expected = (concordant - discordant) / ((concordant + discordant + tiesX) * (concordant + discordant + tiesY)).squareRoot()
            XCTAssertEqual(KendallTau.tauB(x, y), expected, accuracy: 1e-12, "n = \(n)")
        }
        XCTAssertEqual(KendallTau.tauB([1, 2, 3], [3, 2, 1]), -1, accuracy: 1e-12)
    }

    func testPairwiseTauAsCTNASComputesIt() {
        let accuracies: [Float] = [0.9, 0.8, 0.95]
        // A comparator that is right about every pair, then one that is always wrong.
        XCTAssertEqual(KendallTau.pairwise(probabilities: { accuracies[$0] > accuracies[$1] ? 0.9 : 0.1 }, accuracies: accuracies), 1)
        XCTAssertEqual(KendallTau.pairwise(probabilities: { accuracies[$0] > accuracies[$1] ? 0.1 : 0.9 }, accuracies: accuracies), -1)
        // p = 0.5 counts as "first wins", as sign(0) = +1 in the original code.
        // Pairs (0,1), (0,2), (1,2) have true signs +1, −1, −1.
        XCTAssertEqual(KendallTau.pairwise(probabilities: { _, _ in 0.5 }, accuracies: accuracies), -1.0 / 3, accuracy: 1e-12)
    }
}

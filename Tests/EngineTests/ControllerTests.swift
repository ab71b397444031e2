import XCTest
@testable import Engine

final class ControllerTests: XCTestCase {
    func testSequencesFollowTheOriginalGrammar() {
        var g = SeededGenerator(seed: 5)
        let controller = Controller(grammar: NASBench101Grammar(), generator: &g)
        for _ in 0..<200 {
            let sample = controller.sample(generator: &g)
            // 1 count + (n+1) predecessors + n ops + 2·(8 − n) edge ends = 18 decisions.
            XCTAssertEqual(sample.sequence.count, 18)
            let n = Int(sample.sequence[0]) + 1
            XCTAssert((1...5).contains(n))
            for node in 0...n { XCTAssertLessThanOrEqual(Int(sample.sequence[1 + 2 * node]), node) }
            XCTAssertTrue(controller.isValid(sample.sequence))
            XCTAssertLessThan(sample.logProbability, 0)
            XCTAssertGreaterThan(sample.entropy, 0)
        }
        XCTAssertFalse(controller.isValid([9]))
        XCTAssertFalse(controller.isValid([0, 0, 0]))
    }

    func testSamplingIsDeterministicGivenGeneratorState() {
        var g = SeededGenerator(seed: 9)
        let controller = Controller(grammar: NASBench101Grammar(), generator: &g)
        var a = SeededGenerator(seed: 42), b = SeededGenerator(state: a.state)!
        for _ in 0..<20 { XCTAssertEqual(controller.sample(generator: &a), controller.sample(generator: &b)) }
    }

    func testLogProbabilityOfReplayMatchesSampling() {
        var g = SeededGenerator(seed: 10)
        let controller = Controller(grammar: NASBench101Grammar(), generator: &g)
        let sample = controller.sample(generator: &g)
        var gradient = [Float](repeating: 0, count: controller.parameters.count)
        let replay = controller.accumulatePolicyGradient(sequence: sample.sequence, advantage: 1, entropyCoefficient: 0, into: &gradient)
        XCTAssertEqual(replay.logProbability, sample.logProbability, accuracy: 1e-9)
        XCTAssertEqual(replay.entropy, sample.entropy, accuracy: 1e-9)
    }

    func testUniformSamplesDoNotDependOnPolicy() {
        var g = SeededGenerator(seed: 1)
        let a = Controller(grammar: NASBench101Grammar(), generator: &g)
        let b = Controller(grammar: NASBench101Grammar(), generator: &g)
        var r1 = SeededGenerator(seed: 3), r2 = SeededGenerator(seed: 3)
        XCTAssertEqual(a.sample(generator: &r1, uniform: true).sequence, b.sample(generator: &r2, uniform: true).sequence)
    }

    func testPolicyGradientMatchesCentralDifferences() {
        var g = SeededGenerator(seed: 21)
        let grammar = NASBench101Grammar(hiddenSize: 8)
        var controller = Controller(grammar: grammar, generator: &g, initRange: 0.5)
        var sequence = controller.sample(generator: &g).sequence
        while Int(sequence[0]) < 2 { sequence = controller.sample(generator: &g).sequence }
        let advantage: Float = 1.3, beta: Float = 0.4
        var gradient = [Float](repeating: 0, count: controller.parameters.count)
        _ = controller.accumulatePolicyGradient(sequence: sequence, advantage: advantage, entropyCoefficient: beta, into: &gradient)
        func loss(_ c: Controller) -> Double {
            var scratch = [Float](repeating: 0, count: c.parameters.count)
            let r = c.accumulatePolicyGradient(sequence: sequence, advantage: 0, entropyCoefficient: 0, into: &scratch)
            return -Double(advantage) * r.logProbability - Double(beta) * r.entropy
        }
        let layout = controller.layout
        var probes = [Int]()
        let blocks = layout.tables + [layout.wIH, layout.wHH, layout.bIH, layout.bHH, layout.embAttn, layout.hidAttn, layout.vAttn]
            + layout.heads.flatMap { [$0.weight, $0.bias] }
        for base in blocks { for k in [0, 1, 2, 7, 13] where base + k < controller.parameters.count { probes.append(base + k) } }
        var checked = 0
        for index in probes {
            let h: Float = 1e-3
            let saved = controller.parameters[index]
            controller.parameters[index] = saved + h
            let up = loss(controller)
            controller.parameters[index] = saved - h
            let down = loss(controller)
            controller.parameters[index] = saved
            let numeric = (up - down) / Double(2 * h)
            XCTAssertEqual(Double(gradient[index]), numeric, accuracy: 2e-3 + 0.02 * abs(numeric), "parameter \(index)")
            if abs(numeric) > 1e-3 { checked += 1 }
        }
        XCTAssertGreaterThan(checked, 25)
    }
}

final class ControllerTemperatureTests: XCTestCase {
    func testTemperatureGradientMatchesCentralDifferences() {
        var g = SeededGenerator(seed: 4)
        var controller = Controller(grammar: NASBench101Grammar(hiddenSize: 8, temperature: 2.5), generator: &g, initRange: 0.5)
        let sequence = controller.sample(generator: &g).sequence
        var gradient = [Float](repeating: 0, count: controller.parameters.count)
        _ = controller.accumulatePolicyGradient(sequence: sequence, advantage: 0.7, entropyCoefficient: 0.3, into: &gradient)
        func loss(_ c: Controller) -> Double {
            var scratch = [Float](repeating: 0, count: c.parameters.count)
            let r = c.accumulatePolicyGradient(sequence: sequence, advantage: 0, entropyCoefficient: 0, into: &scratch)
            return -0.7 * r.logProbability - 0.3 * r.entropy
        }
        for index in stride(from: 0, to: controller.parameters.count, by: 97) {
            let saved = controller.parameters[index]
            controller.parameters[index] = saved + 1e-3
            let up = loss(controller)
            controller.parameters[index] = saved - 1e-3
            let down = loss(controller)
            controller.parameters[index] = saved
            let numeric = (up - down) / 2e-3
            XCTAssertEqual(Double(gradient[index]), numeric, accuracy: 2e-3 + 0.02 * abs(numeric), "parameter \(index)")
        }
        // A higher temperature flattens the policy: more entropy for the same weights.
        var r1 = SeededGenerator(seed: 1), r2 = SeededGenerator(seed: 1)
        let hot = Controller(grammar: NASBench101Grammar(hiddenSize: 8, temperature: 5), generator: &r1, initRange: 0.5)
        let cold = Controller(grammar: NASBench101Grammar(hiddenSize: 8), generator: &r2, initRange: 0.5)
        var scratch = [Float](repeating: 0, count: hot.parameters.count)
        let fixed = [UInt16](repeating: 0, count: 1) + cold.sample(generator: &g).sequence.dropFirst()
        if cold.isValid(fixed) {
            let eHot = hot.accumulatePolicyGradient(sequence: fixed, advantage: 0, entropyCoefficient: 0, into: &scratch).entropy
            let eCold = cold.accumulatePolicyGradient(sequence: fixed, advantage: 0, entropyCoefficient: 0, into: &scratch).entropy
            XCTAssertGreaterThan(eHot, eCold)
        }
    }
}

import XCTest
@testable import Engine

final class ComparatorTests: XCTestCase {
    static let small = ArchitectureComparator.Configuration(opCount: 6, maxNodes: 7, embeddingDimension: 6, layers: 3)

    static func randomCell(_ g: inout SeededGenerator, maxNodes: Int = 7) -> GraphEncoding {
        let n = 2 + g.nextInt(below: maxNodes - 1)
        var ops = [UInt8](repeating: 0, count: n)
        ops[0] = 1; ops[n - 1] = 5
        for i in 1..<(n - 1) { ops[i] = UInt8(2 + g.nextInt(below: 3)) }
        var adjacency = [UInt8](repeating: 0, count: n * n)
        for i in 0..<n { for j in (i + 1)..<n where g.nextInt(below: 3) == 0 { adjacency[i * n + j] = 1 } }
        // Interior nodes get widths below full, as NAS-Bench-101's channel split gives them.
        let widths = (0..<n).map { i in i == 0 || i == n - 1 ? GraphEncoding.fullWidth : UInt8(1 + g.nextInt(below: 128)) }
        return GraphEncoding(ops: ops, adjacency: adjacency, widths: widths)
    }

    /// Straightforward per-node loops in Double, written from the model's definition, to check
    /// the batched GEMM implementation.
    static func naiveFeatures(_ c: ArchitectureComparator, _ cell: GraphEncoding) -> [Double] {
        let cfg = c.configuration, d = cfg.embeddingDimension, n = cfg.maxNodes
        let p = c.parameters.map(Double.init)
        let layout = c.layout
        var x = (0..<n).map { i -> [Double] in
            let op = i < cell.nodeCount ? Int(cell.ops[i]) : 0
            let width = i < cell.nodeCount ? Double(cell.widths[i]) / 128 : 1
            return (0..<d).map { width * p[layout.embedding + op * d + $0] }
        }
        func edge(_ j: Int, _ i: Int) -> Bool { j < cell.nodeCount && i < cell.nodeCount && cell.hasEdge(from: j, to: i) }
        for l in 0..<cfg.layers {
            var s = [[Double]](repeating: [Double](repeating: 0, count: d), count: n)
            for i in 0..<n {
                for k in 0..<d {
                    var acc = 0.0
                    for m in 0..<d { acc += x[i][m] * p[layout.weights[l] + m * d + k] }
                    s[i][k] = acc
                }
            }
            x = (0..<n).map { i in
                (0..<d).map { k in
                    var v = s[i][k] + x[i][k] + p[layout.biases[l] + k]
                    for j in 0..<n where edge(j, i) { v += s[j][k] }
                    return max(v, 0)
                }
            }
        }
        return (0..<d).map { k in x.reduce(0.0) { $0 + $1[k] } / Double(n) }
    }

    func testFeaturesMatchNaiveDefinition() {
        var g = SeededGenerator(seed: 7)
        let comparator = ArchitectureComparator(configuration: Self.small, generator: &g)
        let cells = (0..<9).map { _ in Self.randomCell(&g) }
        let features = comparator.features(of: cells)
        for (c, cell) in cells.enumerated() {
            let expected = Self.naiveFeatures(comparator, cell)
            for k in 0..<6 {
                XCTAssertEqual(Double(features[c * 6 + k]), expected[k], accuracy: 1e-4 * max(1, abs(expected[k])))
            }
        }
    }

    func testProbabilitiesUseLinearHeadOnConcatenation() {
        var g = SeededGenerator(seed: 8)
        let comparator = ArchitectureComparator(configuration: Self.small, generator: &g)
        let cells = [Self.randomCell(&g), Self.randomCell(&g)]
        let f = [Self.naiveFeatures(comparator, cells[0]), Self.naiveFeatures(comparator, cells[1])]
        let head = comparator.layout.head
        let w = comparator.parameters.map(Double.init)
        var z = w[head + 12]
        for k in 0..<6 { z += w[head + k] * f[0][k] + w[head + 6 + k] * f[1][k] }
        let p = comparator.probabilities(cells: cells, pairs: [(0, 1), (1, 0), (0, 0)])
        XCTAssertEqual(Double(p[0]), 1 / (1 + exp(-z)), accuracy: 1e-5)
        XCTAssertNotEqual(p[0], p[1])
    }

    func testGradientMatchesCentralDifferences() {
        var g = SeededGenerator(seed: 11)
        var comparator = ArchitectureComparator(configuration: Self.small, generator: &g)
        let cells = (0..<6).map { _ in Self.randomCell(&g) }
        // Repeated cells on both sides exercise the "embed each distinct cell once" path.
        let pairs = [(0, 1), (1, 0), (2, 3), (4, 5), (5, 2), (3, 3), (0, 4)]
        let targets: [Float] = [1, 0, 1, 0, 1, 0, 1]
        var gradient = [Float](repeating: 0, count: comparator.parameters.count)
        _ = comparator.accumulateGradient(cells: cells, pairs: pairs, targets: targets, into: &gradient)

        func loss(_ c: ArchitectureComparator) -> Double {
            var scratch = [Float](repeating: 0, count: c.parameters.count)
            return c.accumulateGradient(cells: cells, pairs: pairs, targets: targets, into: &scratch).lossSum
        }
        let layout = comparator.layout
        // Probe every block: embedding, each layer's weight and bias, the head.
        var probes = [Int]()
        for base in [layout.embedding + 6] + layout.weights + layout.biases + [layout.head] {
            for k in 0..<5 { probes.append(base + k * 3 % 36) }
        }
        probes.append(layout.head + 12)
        var checked = 0
        for index in Set(probes).sorted() {
            let h: Float = 5e-4
            let saved = comparator.parameters[index]
            comparator.parameters[index] = saved + h
            let up = loss(comparator)
            comparator.parameters[index] = saved - h
            let down = loss(comparator)
            comparator.parameters[index] = saved
            let numeric = (up - down) / Double(2 * h)
            let analytic = Double(gradient[index])
            XCTAssertEqual(analytic, numeric, accuracy: 4e-3 + 0.03 * abs(numeric), "parameter \(index)")
            if abs(numeric) > 1e-3 { checked += 1 }
        }
        XCTAssertGreaterThan(checked, 20, "too few parameters carried a measurable gradient")
    }

    func testLossAndCorrectCount() {
        var g = SeededGenerator(seed: 3)
        let comparator = ArchitectureComparator(configuration: Self.small, generator: &g)
        let cells = (0..<4).map { _ in Self.randomCell(&g) }
        let pairs = [(0, 1), (2, 3), (1, 2)]
        let targets: [Float] = [1, 0, 1]
        let p = comparator.probabilities(cells: cells, pairs: pairs)
        var gradient = [Float](repeating: 0, count: comparator.parameters.count)
        let (loss, correct) = comparator.accumulateGradient(cells: cells, pairs: pairs, targets: targets, into: &gradient)
        var expected = 0.0, expectedCorrect = 0
        for (k, t) in targets.enumerated() {
            expected -= Double(t) * log(Double(p[k])) + Double(1 - t) * log(1 - Double(p[k]))
            if (p[k] > 0.5) == (t > 0.5) { expectedCorrect += 1 }
        }
        XCTAssertEqual(loss, expected, accuracy: 1e-5)
        XCTAssertEqual(correct, expectedCorrect)
    }

    func testParameterCountOfOriginalConfiguration() {
        // 6×128 embedding + 4 × (128×128 + 128) + 256 + 1
        XCTAssertEqual(ArchitectureComparator.Configuration.nasBench101.parameterCount, 768 + 4 * (16384 + 128) + 257)
    }

    func testAcceptsRejectsForeignCells() {
        var g = SeededGenerator(seed: 1)
        let comparator = ArchitectureComparator(configuration: Self.small, generator: &g)
        XCTAssertTrue(comparator.accepts(Self.randomCell(&g)))
        XCTAssertFalse(comparator.accepts(GraphEncoding(ops: [1, 9], adjacency: [0, 1, 0, 0])))
        XCTAssertFalse(comparator.accepts(GraphEncoding(ops: Array(repeating: 2, count: 8), adjacency: Array(repeating: 0, count: 64))))
    }
}

import Foundation

/// One pass of the controller over a decision sequence, keeping what backpropagation needs.
struct ControllerRun {
    struct Step {
        var inputOffset: Int?       // parameter offset of the embedding row fed as input (nil: zeros)
        var x: [Float], hPrev: [Float], cPrev: [Float]
        var gates: [Float]          // activated i, f, g, o
        var c: [Float], tanhC: [Float], h: [Float]
        var decision: Decision
        var queries: [Float]        // attention: candidates × H tanh activations
        var scaled: [Float]         // K · tanh(z)
        var probabilities: [Float]
        var action: Int
        var entropy: Float
    }

    let controller: Controller
    let layout: ControllerLayout
    let recordTape: Bool
    var steps: [Step] = []
    /// embAttn · key_j for every key row: fixed for a pass, so computed once.
    var keyProjections: [Float] = []

    init(_ controller: Controller, recordTape: Bool) {
        self.controller = controller
        layout = controller.layout
        self.recordTape = recordTape
    }

    mutating func forward(_ choose: (Decision, [Float]) -> Int, uniform: Bool) -> Controller.Sample {
        let hSize = layout.hidden
        let grammar = controller.grammar
        var sequence = [UInt16]()
        var logProbability = 0.0, entropy = 0.0
        var h = [Float](repeating: 0, count: hSize), c = h, x = h
        var inputOffset: Int? = nil
        var gates = [Float](repeating: 0, count: 4 * hSize)
        let layout = layout
        if !uniform {
            keyProjections = [Float](repeating: 0, count: layout.keyRows * hSize)
            controller.parameters.withUnsafeBufferPointer { p in
                keyProjections.withUnsafeMutableBufferPointer { kp in
                    for j in 0..<layout.keyRows {
                        Linear.matVec(p.baseAddress! + layout.embAttn, rows: hSize, cols: hSize,
                                      p.baseAddress! + layout.keyTable + j * hSize, kp.baseAddress! + j * hSize, accumulate: false)
                    }
                }
            }
        }
        while let decision = grammar.decision(after: sequence) {
            if uniform {
                let action = choose(decision, [Float](repeating: 1 / Float(decision.optionCount), count: decision.optionCount))
                sequence.append(UInt16(action))
                continue
            }
            let hPrev = h, cPrev = c
            var queries = [Float]()
            var logits = [Float](repeating: 0, count: decision.optionCount)
            controller.parameters.withUnsafeBufferPointer { pp in
                let p = pp.baseAddress!
                // LSTM cell (PyTorch gate order i, f, g, o).
                gates.withUnsafeMutableBufferPointer { g in
                    Linear.matVec(p + layout.wIH, rows: 4 * hSize, cols: hSize, x, g.baseAddress!, accumulate: false)
                    Linear.matVec(p + layout.wHH, rows: 4 * hSize, cols: hSize, hPrev, g.baseAddress!, accumulate: true)
                    for k in 0..<(4 * hSize) { g[k] += p[layout.bIH + k] + p[layout.bHH + k] }
                    for k in 0..<hSize {
                        let i = logistic(g[k]), f = logistic(g[hSize + k])
                        let gg = tanhf(g[2 * hSize + k]), o = logistic(g[3 * hSize + k])
                        g[k] = i; g[hSize + k] = f; g[2 * hSize + k] = gg; g[3 * hSize + k] = o
                        c[k] = f * cPrev[k] + i * gg
                        h[k] = o * tanhf(c[k])
                    }
                }
                switch decision.scorer {
                case .head(let index):
                    let head = layout.heads[index]
                    Linear.matVec(p + head.weight, rows: head.outputs, cols: hSize, h, &logits, accumulate: false)
                    for k in 0..<decision.optionCount { logits[k] += p[head.bias + k] }
                case .attention(let candidates):
                    var hidden = [Float](repeating: 0, count: hSize)
                    Linear.matVec(p + layout.hidAttn, rows: hSize, cols: hSize, h, &hidden, accumulate: false)
                    queries = [Float](repeating: 0, count: candidates * hSize)
                    for j in 0..<candidates {
                        var z: Float = 0
                        for k in 0..<hSize {
                            let q = tanhf(keyProjections[j * hSize + k] + hidden[k])
                            queries[j * hSize + k] = q
                            z += p[layout.vAttn + k] * q
                        }
                        logits[j] = z
                    }
                }
            }
            let constant = decision.tanhConstant
            if let temperature = decision.temperature { for k in logits.indices { logits[k] /= temperature } }
            var scaled = constant == 0 ? logits : logits.map { constant * tanhf($0) }
            let top = scaled.max()!
            var total: Float = 0
            var probabilities = scaled.map { v -> Float in let e = expf(v - top); total += e; return e }
            for k in probabilities.indices { probabilities[k] /= total }
            let logTotal = logf(total)
            var stepEntropy: Float = 0
            for k in probabilities.indices where probabilities[k] > 0 {
                stepEntropy -= probabilities[k] * (scaled[k] - top - logTotal)
            }
            let action = choose(decision, probabilities)
            logProbability += Double(scaled[action] - top - logTotal)
            entropy += Double(stepEntropy)
            sequence.append(UInt16(action))
            if recordTape {
                steps.append(Step(inputOffset: inputOffset, x: x, hPrev: hPrev, cPrev: cPrev, gates: gates,
                                  c: c, tanhC: c.map { tanhf($0) }, h: h, decision: decision, queries: queries,
                                  scaled: scaled, probabilities: probabilities, action: action, entropy: stepEntropy))
            }
            let row = layout.tables[decision.feedsTable] + action * hSize
            inputOffset = row
            controller.parameters.withUnsafeBufferPointer { p in
                for k in 0..<hSize { x[k] = p[row + k] }
            }
            scaled.removeAll()
        }
        return Controller.Sample(sequence: sequence, logProbability: logProbability, entropy: entropy)
    }

    /// Adds ∇[−A · Σ log p(a_t) − β · Σ H_t] to `gradient`.
    func backward(advantage: Float, entropyCoefficient beta: Float, into gradient: inout [Float]) {
        let hSize = layout.hidden
        let layout = layout
        var dh = [Float](repeating: 0, count: hSize), dc = dh
        var dKeyProjections = [Float](repeating: 0, count: layout.keyRows * hSize)
        var dGates = [Float](repeating: 0, count: 4 * hSize)
        var dx = [Float](repeating: 0, count: hSize)
        controller.parameters.withUnsafeBufferPointer { pp in
            let p = pp.baseAddress!
            gradient.withUnsafeMutableBufferPointer { gg in
                let g = gg.baseAddress!
                for step in steps.reversed() {
                    let decision = step.decision
                    let constant = decision.tanhConstant
                    // dL/ds = −A (onehot − p) + β p (log p + H); then through K·tanh.
                    var dz = [Float](repeating: 0, count: decision.optionCount)
                    for k in 0..<decision.optionCount {
                        let pk = step.probabilities[k]
                        let logP = pk > 0 ? logf(pk) : 0
                        var ds = -advantage * ((k == step.action ? 1 : 0) - pk)
                        ds += beta * pk * (logP + step.entropy)
                        var dLogit = ds
                        if constant != 0 {
                            let t = step.scaled[k] / constant
                            dLogit *= constant * (1 - t * t)
                        }
                        dz[k] = decision.temperature.map { dLogit / $0 } ?? dLogit
                    }
                    switch decision.scorer {
                    case .head(let index):
                        let head = layout.heads[index]
                        Linear.outerAccumulate(dz, rows: decision.optionCount, step.h, cols: hSize, into: g + head.weight)
                        for k in 0..<decision.optionCount { g[head.bias + k] += dz[k] }
                        Linear.matTVecAccumulate(p + head.weight, rows: decision.optionCount, cols: hSize, dz, &dh)
                    case .attention(let candidates):
                        var dPreSum = [Float](repeating: 0, count: hSize)
                        for j in 0..<candidates {
                            let dzj = dz[j]
                            for k in 0..<hSize {
                                let q = step.queries[j * hSize + k]
                                g[layout.vAttn + k] += dzj * q
                                let dPre = dzj * p[layout.vAttn + k] * (1 - q * q)
                                dKeyProjections[j * hSize + k] += dPre
                                dPreSum[k] += dPre
                            }
                        }
                        Linear.outerAccumulate(dPreSum, rows: hSize, step.h, cols: hSize, into: g + layout.hidAttn)
                        Linear.matTVecAccumulate(p + layout.hidAttn, rows: hSize, cols: hSize, dPreSum, &dh)
                    }
                    // LSTM cell backward.
                    for k in 0..<hSize {
                        let i = step.gates[k], f = step.gates[hSize + k]
                        let gt = step.gates[2 * hSize + k], o = step.gates[3 * hSize + k]
                        let tc = step.tanhC[k]
                        let dO = dh[k] * tc
                        let dC = dc[k] + dh[k] * o * (1 - tc * tc)
                        dGates[k] = dC * gt * i * (1 - i)
                        dGates[hSize + k] = dC * step.cPrev[k] * f * (1 - f)
                        dGates[2 * hSize + k] = dC * i * (1 - gt * gt)
                        dGates[3 * hSize + k] = dO * o * (1 - o)
                        dc[k] = dC * f
                    }
                    Linear.outerAccumulate(dGates, rows: 4 * hSize, step.x, cols: hSize, into: g + layout.wIH)
                    Linear.outerAccumulate(dGates, rows: 4 * hSize, step.hPrev, cols: hSize, into: g + layout.wHH)
                    for k in 0..<(4 * hSize) { g[layout.bIH + k] += dGates[k]; g[layout.bHH + k] += dGates[k] }
                    for k in 0..<hSize { dh[k] = 0 }
                    Linear.matTVecAccumulate(p + layout.wHH, rows: 4 * hSize, cols: hSize, dGates, &dh)
                    if let input = step.inputOffset {
                        for k in 0..<hSize { dx[k] = 0 }
                        Linear.matTVecAccumulate(p + layout.wIH, rows: 4 * hSize, cols: hSize, dGates, &dx)
                        for k in 0..<hSize { g[input + k] += dx[k] }
                    }
                }
                // Keys: keyProjection_j = embAttn · key_j.
                if !steps.isEmpty {
                    for j in 0..<layout.keyRows {
                        let dj = dKeyProjections.withUnsafeBufferPointer { $0.baseAddress! + j * hSize }
                        Linear.outerAccumulate(dj, rows: hSize, p + layout.keyTable + j * hSize, cols: hSize, into: g + layout.embAttn)
                        Linear.matTVecAccumulate(p + layout.embAttn, rows: hSize, cols: hSize, dj, g + layout.keyTable + j * hSize)
                    }
                }
            }
        }
    }
}

@inline(__always) func logistic(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

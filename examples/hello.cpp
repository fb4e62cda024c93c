// A two-layer network learns which side of the line x0 + x1 = 0 a point lies on (the README's example).
#include <iostream>

#include "strata.h"
using namespace strata;

int main() {
    manual_seed(0);
    Tensor x = randn({64, 2});                                    // 64 points in the plane
    std::vector<int32_t> side;
    for (float s : sum(x, 1).to_vector()) side.push_back(s > 0);  // label 1 above the line, 0 below
    Tensor labels = from_vector_i32(side, {64});
    Sequential model({std::make_shared<Linear>(2, 16), std::make_shared<ReLU>(), std::make_shared<Linear>(16, 2)});
    SGD optimizer(model.parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f});
    for (int step = 0; step <= 100; ++step) {
        Tensor loss = cross_entropy(model(x), labels);  // logits (64, 2), labels (64)
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        if (step % 25 == 0) std::cout << "step " << step << "  loss " << loss.item() << "\n";
    }
}

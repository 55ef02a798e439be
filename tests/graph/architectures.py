"""Small real architectures for surgery tests: Sequential, residual, concatenation, Conv1D, Conv3D, multi-IO."""
import keras

L = keras.layers


def sequential_cnn():
    return keras.Sequential([
        keras.Input((16, 16, 3)), L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.MaxPooling2D(), L.Conv2D(24, 3, activation="relu"), L.Flatten(), L.Dense(32, activation="relu"),
        L.Dense(10),
    ], name="seq_cnn")


def resnet_style():
    inputs = keras.Input((16, 16, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inputs)))
    for _ in range(2):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(y))
        x = L.ReLU()(L.Add()([x, y]))
    down = L.Conv2D(24, 1, strides=2)(x)
    x = L.Add()([down, L.Conv2D(24, 3, strides=2, padding="same")(x)])
    outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name="resnet_style")


def concat_net():
    inputs = keras.Input((16, 16, 3))
    a = L.Conv2D(12, 3, padding="same", activation="relu")(inputs)
    b = L.Conv2D(8, 1, activation="relu")(inputs)
    x = L.Concatenate()([a, b])
    x = L.Conv2D(16, 3, strides=2, padding="same")(x)
    outputs = L.Dense(10)(L.Flatten()(x))
    return keras.Model(inputs, outputs, name="concat_net")


def conv1d_net():
    return keras.Sequential([
        keras.Input((28, 8)), L.Conv1D(16, 5, padding="same", activation="relu"),
        L.Conv1D(24, 3, strides=2, dilation_rate=1), L.Conv1D(24, 3, dilation_rate=2, activation="relu"),
        L.Conv1D(32, 1), L.GlobalAveragePooling1D(), L.Dense(10),
    ], name="conv1d_net")


def conv3d_net():
    return keras.Sequential([
        keras.Input((4, 12, 12, 2)), L.Conv3D(12, 3, padding="same", activation="relu"),
        L.Conv3D(16, (1, 3, 3), strides=(1, 2, 2)), L.Conv3D(16, 1, activation="relu"),
        L.Flatten(), L.Dense(10),
    ], name="conv3d_net")


def multi_io_net():
    image = keras.Input((12, 12, 3), name="image")
    extra = keras.Input((6,), name="extra")
    x = L.Flatten()(L.Conv2D(8, 3, activation="relu")(image))
    x = L.Concatenate()([L.Dense(16)(x), L.Dense(16, activation="relu")(extra)])
    return keras.Model([image, extra], [L.Dense(10, name="head_a")(x), L.Dense(3, name="head_b")(x)],
                       name="multi_io")


def mobilenet_v2():
    return keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10)


ARCHITECTURES = {f.__name__: f for f in (sequential_cnn, resnet_style, concat_net, conv1d_net, conv3d_net,
                                         multi_io_net, mobilenet_v2)}

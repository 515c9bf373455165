"""Feetech's own Python SDK (scservo_sdk, as LeRobot uses it) talking to
`sponge emulate`: the emulator must behave as STS3215 servos do for a
program that is not ours.

Usage: python feetech_sdk_client.py PORT
"""

import sys
import time

import scservo_sdk as scs

ADDR_MODEL, ADDR_ID, ADDR_TORQUE, ADDR_GOAL, ADDR_LOCK, ADDR_PRESENT = 3, 5, 40, 42, 55, 56
IDS = [1, 2, 3, 4, 5, 6]

results = []


def check(name, condition, detail=""):
    results.append(condition)
    print(("ok    " if condition else "FAIL  ") + name + (f": {detail}" if detail else ""))


def main(port_name):
    port = scs.PortHandler(port_name)
    check("port opens", port.openPort())
    check("baud rate set", port.setBaudRate(1_000_000))
    ph = scs.PacketHandler(0)  # STS servos: little-endian words

    for scs_id in IDS:
        model, result, error = ph.ping(port, scs_id)
        check(f"ping {scs_id} answers as an STS3215", result == scs.COMM_SUCCESS and model == 777,
              f"model {model}, result {ph.getTxRxResult(result)}, error {error}")
    _, result, _ = ph.ping(port, 7)
    check("ping 7 times out", result == scs.COMM_RX_TIMEOUT, ph.getTxRxResult(result))

    position, result, _ = ph.read2ByteTxRx(port, 3, ADDR_PRESENT)
    check("read Present_Position", result == scs.COMM_SUCCESS and position == 2048, f"{position}")

    result, error = ph.write1ByteTxRx(port, 2, ADDR_TORQUE, 1)
    check("write Torque_Enable acknowledged", result == scs.COMM_SUCCESS and error == 0)
    torque, result, _ = ph.read1ByteTxRx(port, 2, ADDR_TORQUE)
    check("torque reads back", result == scs.COMM_SUCCESS and torque == 1)

    # EEPROM writes need Lock = 0: with the lock on, the ID stays.
    ph.write1ByteTxRx(port, 6, ADDR_ID, 9)
    _, result, _ = ph.ping(port, 9)
    check("locked EEPROM keeps the ID", result != scs.COMM_SUCCESS)

    sync_write = scs.GroupSyncWrite(port, ph, ADDR_TORQUE, 1)
    for scs_id in IDS:
        sync_write.addParam(scs_id, [1])
    check("sync write torque on", sync_write.txPacket() == scs.COMM_SUCCESS)

    goals = {scs_id: 1500 + 150 * scs_id for scs_id in IDS}
    sync_write = scs.GroupSyncWrite(port, ph, ADDR_GOAL, 2)
    for scs_id, goal in goals.items():
        sync_write.addParam(scs_id, [scs.SCS_LOBYTE(goal), scs.SCS_HIBYTE(goal)])
    check("sync write goals", sync_write.txPacket() == scs.COMM_SUCCESS)

    sync_read = scs.GroupSyncRead(port, ph, ADDR_PRESENT, 2)
    for scs_id in IDS:
        sync_read.addParam(scs_id)
    positions = {}
    deadline = time.time() + 3.0
    while time.time() < deadline:
        if sync_read.txRxPacket() == scs.COMM_SUCCESS:
            positions = {i: sync_read.getData(i, ADDR_PRESENT, 2) for i in IDS}
            if positions == goals:
                break
        time.sleep(0.02)
    check("sync read sees every servo reach its goal", positions == goals, f"{positions}")

    # REG_WRITE waits for ACTION.
    ph.regWriteTxRx(port, 1, ADDR_GOAL, 2, [scs.SCS_LOBYTE(2500), scs.SCS_HIBYTE(2500)])
    time.sleep(0.3)
    position, _, _ = ph.read2ByteTxRx(port, 1, ADDR_PRESENT)
    check("reg write alone does not move", position == goals[1], f"{position}")
    ph.action(port, scs.BROADCAST_ID)
    time.sleep(0.6)
    position, _, _ = ph.read2ByteTxRx(port, 1, ADDR_PRESENT)
    check("action applies the registered goal", position == 2500, f"{position}")

    port.closePort()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
